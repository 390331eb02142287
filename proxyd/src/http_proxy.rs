//! The HTTP proxy side of a data connection: `CONNECT host:port` tunnels and absolute-form
//! requests (`GET http://host/path`) forwarded over a fresh upstream connection.
//!
//! hyper parses the request heads (with a timeout on each head, none on bodies or tunnels).
//! Hop-by-hop headers are dropped in both directions: the fixed list of RFC 9110 §7.6.1 plus
//! every header the `Connection` header names.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::dial::{DialError, Net, dial};
use crate::registry::Sandbox;
use crate::relay;
use crate::server::{Outcome, State};
use crate::stream::Counted;

type Body = BoxBody<Bytes, hyper::Error>;

fn full(text: String) -> Body {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed()
}

/// Headers that belong to one connection, never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers, including those `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(*n);
    }
}

/// Serves one client connection (after its `GW1 CONNECT … http` line).
pub async fn serve<N, S>(state: Arc<State<N>>, sandbox: Arc<Sandbox>, io: S)
where
    N: Net,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let head_timeout = state.head_timeout;
    let (log_state, log_sandbox) = (state.clone(), sandbox.clone());
    let svc = hyper::service::service_fn(move |req| {
        let (state, sandbox) = (state.clone(), sandbox.clone());
        async move { Ok::<_, std::convert::Infallible>(handle::<N, S>(state, sandbox, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        // Malformed heads (hyper answers 400 where it still can), slow heads, aborts.
        if e.is_parse() || e.is_timeout() || e.is_parse_status() {
            let reason = if e.is_timeout() {
                "request head not received in time".to_string()
            } else {
                format!("malformed HTTP request: {e}")
            };
            log_state.log_error(&log_sandbox, "http", reason);
        }
    }
}

fn text_response(status: StatusCode, text: String) -> Response<Body> {
    let mut r = Response::new(full(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A header value with anything but visible ASCII replaced.
fn header_text(s: &str) -> HeaderValue {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static("?"))
}

/// The refusal for a failed dial: 403 (denied) or 502 (unreachable).
fn refusal(host: &str, port: u16, e: &DialError) -> Response<Body> {
    match e {
        DialError::Denied(v) => {
            let mut text = format!("greywall: connection to {host}:{port} denied: {}", v.reason);
            if let Some(r) = &v.rule {
                text.push_str(&format!(" (rule {r})"));
            }
            text.push('\n');
            let mut resp = text_response(StatusCode::FORBIDDEN, text);
            let h = resp.headers_mut();
            h.insert("x-greywall-reason", header_text(&v.reason.to_string()));
            if let Some(r) = &v.rule {
                h.insert("x-greywall-rule", header_text(&r.to_string()));
            }
            resp
        }
        other => text_response(
            StatusCode::BAD_GATEWAY,
            format!(
                "greywall: cannot reach {host}:{port}: {}\n",
                other.describe()
            ),
        ),
    }
}

fn bad_request<N: Net>(state: &State<N>, sandbox: &Sandbox, why: &str) -> Response<Body> {
    state.log_error(sandbox, "http", format!("bad request: {why}"));
    text_response(StatusCode::BAD_REQUEST, format!("greywall: {why}\n"))
}

/// `S` is the client stream's type: a tunnel takes it back from hyper to relay on it directly.
async fn handle<N, S>(
    state: Arc<State<N>>,
    sandbox: Arc<Sandbox>,
    req: Request<Incoming>,
) -> Response<Body>
where
    N: Net,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let started = Instant::now();
    let (host, port) = {
        let uri = req.uri();
        let Some(auth) = uri.authority() else {
            return bad_request(
                &state,
                &sandbox,
                "a proxy request needs an absolute URL or CONNECT host:port",
            );
        };
        let default = match (req.method() == Method::CONNECT, uri.scheme_str()) {
            (true, _) => None,
            (false, Some("http")) => Some(80),
            (false, _) => {
                return bad_request(
                    &state,
                    &sandbox,
                    "only http:// URLs can be forwarded; use CONNECT",
                );
            }
        };
        let Some(port) = auth.port_u16().or(default) else {
            return bad_request(&state, &sandbox, "CONNECT needs host:port");
        };
        let host = auth.host().to_string();
        (host, port)
    };
    let dialed = dial(&state.net, &sandbox.rules, &state.mappings, &host, port).await;
    let dialed = match dialed {
        Ok(d) => d,
        Err(e) => {
            let resp = refusal(&host, port, &e);
            state.log_dial_failure(&sandbox, "http", &host, port, &e, started);
            return resp;
        }
    };
    let (outcome, upstream) = Outcome::of(&sandbox, "http", host.clone(), port, dialed, started);
    let counters = outcome.counters.clone();
    let active = state.active();
    if req.method() == Method::CONNECT {
        let st = state.clone();
        let mut upstream = upstream;
        tokio::spawn(async move {
            let _active = active;
            let relayed = match hyper::upgrade::on(req).await {
                // The client's own stream, and what hyper read past the request head.
                Ok(up) => match up.downcast::<TokioIo<S>>() {
                    Ok(parts) => {
                        let mut client = parts.io.into_inner();
                        let early = parts.read_buf.to_vec();
                        relay::tunnel(&mut client, early, &mut upstream, &counters).await
                    }
                    Err(up) => {
                        let mut client = TokioIo::new(up);
                        relay::tunnel(&mut client, Vec::new(), &mut upstream, &counters).await
                    }
                },
                Err(e) => Err(std::io::Error::other(format!("upgrade failed: {e}"))),
            };
            st.log_outcome(&outcome, relayed.err().map(|e| e.to_string()));
        });
        let mut r = Response::new(full(String::new()));
        *r.status_mut() = StatusCode::OK;
        return r;
    }
    let upstream = Counted::new(upstream, counters);
    forward(state, req, upstream, outcome, active).await
}

async fn forward<N: Net, S>(
    state: Arc<State<N>>,
    req: Request<Incoming>,
    upstream: S,
    outcome: Outcome,
    active: crate::server::ActiveGuard<N>,
) -> Response<Body>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        match hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await {
            Ok(x) => x,
            Err(e) => {
                state.log_outcome(&outcome, Some(e.to_string()));
                return text_response(StatusCode::BAD_GATEWAY, format!("greywall: {e}\n"));
            }
        };
    let st = state.clone();
    let out = outcome.clone();
    tokio::spawn(async move {
        let _active = active;
        let r = conn.await.err().map(|e| e.to_string());
        st.log_outcome(&out, r);
    });
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // The target decides the Host (RFC 9112 §3.2.2): a client cannot aim a request at one
    // virtual host while proxyd decided on another.
    let host_header = match outcome.port {
        80 => outcome.host.clone(),
        p => format!("{}:{p}", outcome.host),
    };
    parts
        .headers
        .insert(header::HOST, header_text(&host_header));
    let origin_form = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    match origin_form.parse() {
        Ok(u) => parts.uri = u,
        Err(_) => {
            return text_response(StatusCode::BAD_REQUEST, "greywall: bad path\n".into());
        }
    }
    match sender.send_request(Request::from_parts(parts, body)).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => text_response(
            StatusCode::BAD_GATEWAY,
            format!("greywall: upstream failed: {e}\n"),
        ),
    }
}

/// How long a client may take to send a request head.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, X-Secret , x-bad header"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic abc"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-kept", "1"),
            ("content-length", "3"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["content-length", "x-kept"]);
    }

    #[test]
    fn header_text_is_always_valid() {
        assert_eq!(header_text("a (b:1:2)"), "a (b:1:2)");
        assert_eq!(header_text("é\n\r"), "???");
    }
}
