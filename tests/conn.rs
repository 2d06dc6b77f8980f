//! The per-device connection against raw TCP servers that misbehave the way
//! embedded HTTP servers do: closing kept-alive connections without a word,
//! saying `Connection: close`, or stopping halfway through an answer.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use camfleet::onvif::conn::DeviceConn;
use camfleet::onvif::transport::TransportError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ANSWER: &str = "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body><ok/></s:Body></s:Envelope>";

/// Read one request (headers + Content-Length body) from `s`.
async fn read_request(s: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let n = match s.read(&mut tmp).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        buf.extend_from_slice(&tmp[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return true;
            }
        }
    }
}

fn response(extra_headers: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: {}\r\n{extra_headers}\r\n{ANSWER}",
        ANSWER.len()
    )
}

/// A server answering `per_conn` requests per connection, then closing.
async fn server(per_conn: usize, extra_headers: &'static str) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/onvif/device_service", l.local_addr().unwrap());
    let conns = Arc::new(AtomicUsize::new(0));
    let c = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                for _ in 0..per_conn {
                    if !read_request(&mut s).await {
                        return;
                    }
                    if s.write_all(response(extra_headers).as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                // Close without saying so, as many embedded servers do.
            });
        }
    });
    (url, conns)
}

async fn post(
    c: &DeviceConn,
    url: &str,
) -> Result<camfleet::onvif::transport::HttpReply, TransportError> {
    c.post(
        &url.parse().unwrap(),
        "application/soap+xml",
        "<x/>".to_string(),
        None,
        None,
    )
    .await
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let (url, conns) = server(100, "").await;
    let c = DeviceConn::new(common::transport());
    for _ in 0..10 {
        let r = post(&c, &url).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], ANSWER.as_bytes());
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn silently_closed_keep_alive_is_reopened_transparently() {
    let (url, conns) = server(1, "").await;
    let c = DeviceConn::new(common::transport());
    for _ in 0..5 {
        assert_eq!(post(&c, &url).await.unwrap().status, 200);
    }
    assert_eq!(conns.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn connection_close_header_is_honoured() {
    let (url, conns) = server(100, "Connection: close\r\n").await;
    let c = DeviceConn::new(common::transport());
    for _ in 0..3 {
        assert_eq!(post(&c, &url).await.unwrap().status, 200);
    }
    assert_eq!(conns.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn answer_cut_off_midway_is_an_error_and_the_connection_is_dropped() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/x", l.local_addr().unwrap());
    tokio::spawn(async move {
        // First connection: promise 1000 bytes, send 10, close.
        let (mut s, _) = l.accept().await.unwrap();
        read_request(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
            .await;
        drop(s);
        // Second connection: a proper answer.
        let (mut s, _) = l.accept().await.unwrap();
        read_request(&mut s).await;
        let _ = s.write_all(response("").as_bytes()).await;
        let _ = read_request(&mut s).await;
    });
    let c = DeviceConn::new(common::transport());
    assert!(matches!(post(&c, &url).await, Err(TransportError::Io(_))));
    assert_eq!(post(&c, &url).await.unwrap().status, 200);
}

#[tokio::test]
async fn a_hung_exchange_times_out_and_is_not_reused() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/x", l.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        // First connection hangs after the request; later ones answer.
        let (mut hung, _) = l.accept().await.unwrap();
        a.fetch_add(1, Ordering::SeqCst);
        read_request(&mut hung).await;
        let (mut s, _) = l.accept().await.unwrap();
        a.fetch_add(1, Ordering::SeqCst);
        read_request(&mut s).await;
        let _ = s.write_all(response("").as_bytes()).await;
        let _ = read_request(&mut s).await;
        drop(hung);
    });
    let c = DeviceConn::new(common::transport_with_timeout(200));
    let u: url::Url = url.parse().unwrap();
    let r = c
        .post(
            &u,
            "application/soap+xml",
            "<x/>".to_string(),
            None,
            Some(Duration::from_millis(200)),
        )
        .await;
    assert!(matches!(r, Err(TransportError::Timeout(_))), "{r:?}");
    assert_eq!(post(&c, &url).await.unwrap().status, 200);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn oversized_content_length_is_refused_before_reading() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/x", l.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        read_request(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n<s:Envelope")
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let c = DeviceConn::new(common::transport());
    assert!(matches!(
        post(&c, &url).await,
        Err(TransportError::TooLarge(_))
    ));
}
