//! An app's HTTP health check, as the docker driver runs it before traffic
//! moves to an instance. The router keeps running the same check afterwards
//! ([`crate::router::caddy`]), with the same meaning: healthy is a `2xx`
//! answer on the path within [`HEALTH_CHECK_TIMEOUT`]. Redirects are not
//! followed; a `3xx` is not healthy (Caddy's active check agrees).

use crate::router::HEALTH_CHECK_TIMEOUT as TIMEOUT;

/// One check of `path` on the instance published at `host:port`: `Ok` when
/// healthy, else what the user is told it did ("answered 500", "did not
/// answer within 2s").
pub async fn check(host: &str, port: u16, path: &str) -> Result<(), String> {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|error| error.to_string())?;
    match client
        .get(format!("http://{host}:{port}{path}"))
        .send()
        .await
    {
        Ok(answer) if answer.status().is_success() => Ok(()),
        Ok(answer) => Err(format!("answered {}", answer.status().as_u16())),
        Err(error) if error.is_timeout() => {
            Err(format!("did not answer within {}s", TIMEOUT.as_secs()))
        }
        Err(_) => Err("closed the connection without an answer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server answering every request with `status`, or never answering.
    async fn server(status: Option<u16>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    let _ = socket.read(&mut buffer).await;
                    match status {
                        Some(status) => {
                            let answer = format!(
                                "HTTP/1.1 {status} X\r\nlocation: /elsewhere\r\ncontent-length: 0\r\n\r\n"
                            );
                            let _ = socket.write_all(answer.as_bytes()).await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(10)).await,
                    }
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn only_a_2xx_in_time_is_healthy() {
        assert_eq!(
            check("127.0.0.1", server(Some(204)).await, "/healthz").await,
            Ok(())
        );
        assert_eq!(
            check("127.0.0.1", server(Some(500)).await, "/healthz").await,
            Err("answered 500".into())
        );
        assert_eq!(
            check("127.0.0.1", server(Some(302)).await, "/healthz").await,
            Err("answered 302".into()),
            "a redirect is not followed"
        );
        assert_eq!(
            check("127.0.0.1", server(None).await, "/healthz").await,
            Err("did not answer within 2s".into())
        );
    }
}
