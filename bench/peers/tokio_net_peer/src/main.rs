//! Tokio peer of tools/bench-net.sh: an echo server and an HTTP/1.1
//! keep-alive hello world on a current_thread runtime (one thread, as
//! tulip's loop).
//!
//!   tokio_net_peer echo PORT   TCP echo on 127.0.0.1:PORT: a task per
//!                              connection, read into a buffer and
//!                              write_all back (Tokio's own echo example)
//!   tokio_net_peer http PORT   hyper 0.14's HTTP/1 server, a service_fn
//!                              answering "Hello, World!\n" (keep-alive
//!                              as HTTP/1.1 asks)
//!
//! Runs until killed.
use std::convert::Infallible;
use std::net::SocketAddr;

use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Request, Response, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn echo(addr: SocketAddr) {
    let listener = TcpListener::bind(addr).await.expect("bind");
    println!("listening on {}", addr);
    loop {
        let (mut socket, _) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => continue,
        };
        let _ = socket.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let n = match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if socket.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn hello(_req: Request<Body>) -> Result<Response<Body>, Infallible> {
    Ok(Response::builder()
        .header("Content-Type", "text/plain")
        .body(Body::from("Hello, World!\n"))
        .unwrap())
}

async fn http(addr: SocketAddr) {
    let make = make_service_fn(|_conn| async { Ok::<_, Infallible>(service_fn(hello)) });
    let server = Server::bind(&addr).tcp_nodelay(true).serve(make);
    println!("listening on {}", addr);
    if let Err(e) = server.await {
        eprintln!("tokio_net_peer: {}", e);
        std::process::exit(1);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 || (args[1] != "echo" && args[1] != "http") {
        eprintln!("usage: tokio_net_peer echo|http PORT");
        std::process::exit(2);
    }
    let port: u16 = args[2].parse().expect("PORT");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if args[1] == "echo" {
        rt.block_on(echo(addr));
    } else {
        rt.block_on(http(addr));
    }
}
