//! A function that answers every call with a greeting from the `hoist-greeting` crate.
//!
//! It is a Cargo project the catalog builds: the installation phase vendors its dependency from
//! a local crate directory (`cargo vendor --offline`) and the compilation phase compiles it
//! (`cargo build --offline --release`). To compile in a second with no registry it uses only the
//! standard library and that crate: a minimal HTTP/1.1 server on `FUNC_PORT`, run as
//! `FUNC_PROCESS` behind `hoist-proxy`, which adds the contract's timeout, request log and
//! metrics.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};

/// The function.
fn handler() -> String {
    hoist_greeting::greet("deps")
}

fn main() {
    let port = std::env::var("FUNC_PORT").unwrap_or_else(|_| "8090".into());
    let Ok(port) = port.trim().parse::<u16>() else {
        eprintln!("hellowithdeps: FUNC_PORT `{port}` is not a port");
        std::process::exit(2);
    };
    let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("hellowithdeps: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                std::thread::spawn(move || {
                    if let Err(e) = serve(stream) {
                        eprintln!("hellowithdeps: {e}");
                    }
                });
            }
            Err(e) => eprintln!("hellowithdeps: accept: {e}"),
        }
    }
}

/// Reads one request (its body is skipped), answers it and closes the connection.
fn serve(stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut words = request_line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    std::io::copy(&mut reader.take(length), &mut std::io::sink())?;
    let body = if method == "GET" && path == "/healthz" {
        "OK".to_owned()
    } else {
        handler()
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
