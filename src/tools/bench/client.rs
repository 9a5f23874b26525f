//! Just enough of an HTTP/1.1 client for the daemons the bench starts: JSON requests
//! with the bench's API token, on keep-alive connections.

use super::BenchError;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub const TOKEN: &str = "bench-token-0123456789abcdef";

/// One request on a fresh connection.
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), BenchError> {
    Conn::open(port).await?.send(method, path, body).await
}

/// A keep-alive HTTP/1.1 connection: just enough client for JSON requests whose answers
/// carry a Content-Length (axum's do).
pub struct Conn(BufReader<TcpStream>);

impl Conn {
    pub async fn open(port: u16) -> Result<Conn, BenchError> {
        let s = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| BenchError::io("connect to the daemon", e))?;
        s.set_nodelay(true)
            .map_err(|e| BenchError::io("set TCP_NODELAY", e))?;
        Ok(Conn(BufReader::new(s)))
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, String), BenchError> {
        let io = |e| BenchError::io("talk to the daemon", e);
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.0
            .get_mut()
            .write_all(format!("{head}{body}").as_bytes())
            .await
            .map_err(io)?;
        let mut line = String::new();
        self.0.read_line(&mut line).await.map_err(io)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0;
        loop {
            line.clear();
            if self.0.read_line(&mut line).await.map_err(io)? == 0 || line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut answer = vec![0; length];
        self.0.read_exact(&mut answer).await.map_err(io)?;
        Ok((status, String::from_utf8_lossy(&answer).into_owned()))
    }
}
