//! The response body the proxy sends to clients: a body it made itself, a target's
//! body streamed through hyper's client, or one read from a target's HTTP/1.1
//! connection directly ([`crate::hyper_path`]'s plain HTTP/1.1 exchange). A target's body carries the request's in-flight guard and its
//! pooled connection: the connection goes back to the pool when the body ends, and the
//! request is counted out of the target when the body ends or is dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use prometheus::IntCounter;

use crate::pool::UpSender;
use crate::raw_body::RawBody;
use crate::target::InFlight;

/// Holds a target's in-flight count (and the connection) while its response streams.
pub(crate) struct ResponseGuard {
    pub(crate) in_flight: InFlight,
    pub(crate) conn: Option<UpSender>,
}

impl ResponseGuard {
    /// The response was read to its end: the connection is idle again.
    fn finish(mut self) {
        if let Some(c) = self.conn.take() {
            self.in_flight.target().pool.checkin(c);
        }
    }
}

pub enum ProxyBody {
    Full(Option<Bytes>),
    Upstream {
        inner: Incoming,
        guard: Option<ResponseGuard>,
        bytes: IntCounter,
        /// A mesh group's processed bytes, counted as well.
        mesh_bytes: Option<IntCounter>,
    },
    Raw(Box<RawBody>),
}

/// Why a response body broke off.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

impl ProxyBody {
    pub(crate) fn full(b: impl Into<Bytes>) -> ProxyBody {
        let b = b.into();
        ProxyBody::Full((!b.is_empty()).then_some(b))
    }

    pub(crate) fn empty() -> ProxyBody {
        ProxyBody::Full(None)
    }

    pub(crate) fn upstream(
        inner: Incoming,
        guard: ResponseGuard,
        bytes: IntCounter,
        mesh_bytes: Option<IntCounter>,
    ) -> ProxyBody {
        if inner.is_end_stream() {
            guard.finish();
            return ProxyBody::Upstream {
                inner,
                guard: None,
                bytes,
                mesh_bytes,
            };
        }
        ProxyBody::Upstream {
            inner,
            guard: Some(guard),
            bytes,
            mesh_bytes,
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Raw(b) => b.poll_frame(cx).map_err(|e| e.into()),
            ProxyBody::Upstream {
                inner,
                guard,
                bytes,
                mesh_bytes,
            } => {
                let r = Pin::new(&mut *inner).poll_frame(cx);
                match &r {
                    Poll::Ready(Some(Ok(f))) => {
                        if let Some(d) = f.data_ref() {
                            bytes.inc_by(d.len() as u64);
                            if let Some(m) = mesh_bytes {
                                m.inc_by(d.len() as u64);
                            }
                        }
                        if inner.is_end_stream() {
                            if let Some(g) = guard.take() {
                                g.finish();
                            }
                        }
                    }
                    Poll::Ready(None) => {
                        if let Some(g) = guard.take() {
                            g.finish();
                        }
                    }
                    Poll::Ready(Some(Err(_))) => {
                        // The connection is broken: drop it with the guard.
                        guard.take();
                    }
                    Poll::Pending => {}
                }
                r.map_err(|e| e.into())
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Upstream { inner, .. } => inner.is_end_stream(),
            ProxyBody::Raw(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Upstream { inner, .. } => inner.size_hint(),
            ProxyBody::Raw(b) => b.size_hint(),
        }
    }
}
