//! `greywall __socks-connect SOCKS_PORT HOST PORT`: ssh's `ProxyCommand` inside a sandbox with
//! filtered egress. It asks the sandbox's SOCKS5 port (greywall-proxyd behind the bridge) for
//! `HOST:PORT` by name, then copies standard input to the connection and the connection to
//! standard output. `GIT_SSH_COMMAND` names it when the policy allows SSH (an entry with port
//! 22), so `git clone git@host:…` works without external tools.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;

pub fn run(socks_port: u16, host: &str, port: u16) -> ExitCode {
    match connect(socks_port, host, port).and_then(relay) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("greywall: cannot reach {host}:{port} through the SOCKS proxy: {e}");
            ExitCode::from(1)
        }
    }
}

fn connect(socks_port: u16, host: &str, port: u16) -> io::Result<TcpStream> {
    let name = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .as_bytes();
    let len = u8::try_from(name.len()).map_err(|_| io::Error::other("host name too long"))?;
    let mut s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], socks_port)))?;
    let mut req = vec![5, 1, 0, 5, 1, 0, 3, len];
    req.extend_from_slice(name);
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req)?;
    let mut head = [0u8; 6];
    s.read_exact(&mut head)?;
    if head[..2] != [5, 0] || head[2] != 5 {
        return Err(io::Error::other(
            "the proxy did not accept the SOCKS5 greeting",
        ));
    }
    if head[3] != 0 {
        return Err(io::Error::other(format!(
            "the proxy refused the connection (SOCKS5 reply {})",
            head[3]
        )));
    }
    let rest = match head[5] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut n = [0u8; 1];
            s.read_exact(&mut n)?;
            usize::from(n[0]) + 2
        }
        _ => return Err(io::Error::other("malformed SOCKS5 reply")),
    };
    let mut skip = vec![0u8; rest];
    s.read_exact(&mut skip)?;
    Ok(s)
}

fn relay(s: TcpStream) -> io::Result<()> {
    let up = s.try_clone()?;
    // A helper of ssh, not the supervisor: one thread per direction is the simple way here.
    let t = std::thread::spawn(move || {
        let mut up = up;
        let r = io::copy(&mut io::stdin().lock(), &mut up);
        let _ = up.shutdown(Shutdown::Write);
        r
    });
    let mut down = s;
    io::copy(&mut down, &mut io::stdout().lock())?;
    io::stdout().flush()?;
    // ssh closes its end when done; the copy above ended with the connection.
    drop(t);
    Ok(())
}
