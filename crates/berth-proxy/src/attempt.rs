//! One request's attempts at its target group: the targets it already failed on, the
//! attempts it spent, the group's retry budget, and what each failure means.
//!
//! Every forwarding path (the HTTP/1.1 fast path, the hyper path and the NLB stream
//! path) runs the same loop: [`Attempts::next`] picks a target or says which error the
//! client gets; the path connects and sends its own way and reports how it went with
//! [`Attempts::connected`], [`Attempts::responded`] or [`Attempts::failed`]. The last
//! returns the [`Verdict`]: go again, or answer with an error.
//!
//! A [`Failure`] is classified in the spirit of pingora's error type: by how far the
//! request got ([`Stage`]: not sent, sent without a response, answered), by whose side
//! failed ([`Side`]: the target's or the client's), and by whether going again is safe
//! ([`Retry`]). A request that never reached a target goes again; one that was sent goes
//! again only when it can be replayed (idempotent, with its body still in hand). A failure
//! before any response on a reused pooled connection most likely means the target closed
//! that connection as it sat idle: the request goes again without spending an attempt
//! (pingora's "reused only" retry), at most [`MAX_STALE_REPLAYS`] times.
//!
//! Mesh target groups ([`crate::mesh`]) add two failures that go again on another target
//! when the request can be replayed: a 503 response ([`Failure::Unavailable`], whose
//! response the client gets when it does not go again) and an HTTP/2 stream the target
//! refused before processing it ([`Failure::Refused`]). Their responses and connection
//! failures also feed outlier detection.
//!
//! What it does not do: connect, send or read (each path does that its own way), or
//! choose among targets (the group's algorithm does, in [`GroupRuntime::pick`]).

use std::net::SocketAddr;

use http::{Method, StatusCode};
use tokio::time::Instant;

use crate::group::GroupRuntime;
use crate::target::{InFlight, TargetState};

/// How many targets one request tries before the client gets a 502.
pub(crate) const MAX_ATTEMPTS: usize = 3;
/// Replays after a reused pooled connection failed before any response; they do not
/// count as attempts.
pub(crate) const MAX_STALE_REPLAYS: usize = 4;

/// Why one attempt at a target failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No connection to the target could be opened (refused, unreachable, timed out, or
    /// the TLS or HTTP/2 handshake failed).
    Connect,
    /// A connection was open, but the request did not go out on it.
    Unsent,
    /// The request went out and the connection ended without a response.
    NoResponse,
    /// The target answered with something the proxy cannot pass on.
    BadResponse,
    /// Nothing moved on the client connection for the idle timeout while the request
    /// waited on the target.
    Timeout,
    /// The client's side failed while the request was being sent (its body broke off).
    ClientGone,
    /// A mesh group's target answered 503. When the request does not go again, the
    /// client gets that response as it is.
    Unavailable,
    /// A mesh group's HTTP/2 target refused the stream (REFUSED_STREAM): it did not
    /// process the request.
    Refused,
}

/// How far a failed request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Nothing reached the target.
    NotSent,
    /// The request (or part of it) reached the target; no response came back.
    SentWithoutResponse,
    /// A response came back.
    Answered,
}

/// Whose side of the proxy failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The target (or the network to it).
    Upstream,
    /// The client.
    Downstream,
}

/// Whether a failed request may go again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Always: the target never saw the request.
    Safe,
    /// Only when the request can be replayed: the target may have acted on it.
    IfReplayable,
    /// Never: the target answered, or the client is gone.
    Never,
}

impl Failure {
    pub(crate) const fn stage(self) -> Stage {
        match self {
            Failure::Connect | Failure::Unsent | Failure::Refused => Stage::NotSent,
            Failure::NoResponse | Failure::Timeout | Failure::ClientGone => {
                Stage::SentWithoutResponse
            }
            Failure::BadResponse | Failure::Unavailable => Stage::Answered,
        }
    }

    pub(crate) const fn side(self) -> Side {
        match self {
            Failure::ClientGone => Side::Downstream,
            _ => Side::Upstream,
        }
    }

    pub(crate) const fn retry(self) -> Retry {
        match self {
            Failure::Connect | Failure::Unsent => Retry::Safe,
            Failure::NoResponse | Failure::Unavailable | Failure::Refused => Retry::IfReplayable,
            Failure::BadResponse | Failure::Timeout | Failure::ClientGone => Retry::Never,
        }
    }

    /// The status the client gets when this failure ends its request.
    pub(crate) const fn status(self) -> StatusCode {
        match self {
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Call [`Attempts::next`] again.
    Retry,
    /// Give up: the client gets this ELB error.
    Answer(StatusCode),
}

/// Whether `m` may be sent twice (RFC 9110 §9.2.2).
#[inline]
pub(crate) fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// One request's attempts. Lives on the stack of the request's task: no allocation, no
/// lock (the group's budget is an atomic).
pub(crate) struct Attempts<'g> {
    group: &'g GroupRuntime,
    /// The sticky target, tried first while it is usable.
    preferred: Option<SocketAddr>,
    /// The request can be sent again after it went out: idempotent, and its body is
    /// still in hand (none, or buffered).
    replayable: bool,
    /// Targets this request failed on; at most one per attempt.
    excluded: [SocketAddr; MAX_ATTEMPTS],
    excluded_len: usize,
    /// Attempts spent (stale replays give theirs back).
    spent: usize,
    stale_replays: usize,
    /// Some target was picked: running out of them is a 502, not a 503.
    picked_any: bool,
    /// The next attempt's retry was already taken from the budget (a 503 is only given
    /// up for another try once the try is sure).
    prepaid: bool,
}

impl<'g> Attempts<'g> {
    /// A request arrived for `group`; it adds to the group's retry budget.
    #[inline]
    pub(crate) fn start(
        group: &'g GroupRuntime,
        preferred: Option<SocketAddr>,
        replayable: bool,
    ) -> Attempts<'g> {
        group.retry_budget.deposit();
        if let Some(mesh) = &group.mesh {
            mesh.metrics.requests.inc();
        }
        Attempts {
            group,
            preferred,
            replayable,
            excluded: [SocketAddr::from(([0, 0, 0, 0], 0)); MAX_ATTEMPTS],
            excluded_len: 0,
            spent: 0,
            stale_replays: 0,
            picked_any: false,
            prepaid: false,
        }
    }

    /// Whether the request may go again after it was sent.
    #[inline]
    pub(crate) fn replayable(&self) -> bool {
        self.replayable
    }

    /// Whether the request goes to a mesh target group.
    #[inline]
    pub(crate) fn is_mesh(&self) -> bool {
        self.group.mesh.is_some()
    }

    /// The targets this request already failed on.
    #[inline]
    pub(crate) fn excluded(&self) -> &[SocketAddr] {
        &self.excluded[..self.excluded_len]
    }

    /// Picks the target of the next attempt and counts the request in on it. `Err` is
    /// the status the client gets: 503 when the group had no target at all, 502 when the
    /// attempts or the group's retry budget ran out.
    pub(crate) fn next(&mut self) -> Result<InFlight, StatusCode> {
        if self.spent >= MAX_ATTEMPTS {
            return Err(StatusCode::BAD_GATEWAY);
        }
        let Some(in_flight) = self.group.pick(self.excluded(), self.preferred) else {
            return Err(if self.picked_any {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            });
        };
        self.picked_any = true;
        if self.spent > 0 {
            if !std::mem::take(&mut self.prepaid) && !self.group.retry_budget.take_retry() {
                return Err(StatusCode::BAD_GATEWAY);
            }
            self.group.metrics.retries.inc();
        }
        self.spent += 1;
        Ok(in_flight)
    }

    /// A connection to `target` is open (new or pooled): the request goes to it.
    #[inline]
    pub(crate) fn connected(&self, target: &TargetState) {
        target.connect_succeeded();
        target.metrics.requests.inc();
    }

    /// `target` answered with `status` now, to a request sent at `sent`: one clock
    /// reading times the response and ages the latency estimate.
    #[inline]
    pub(crate) fn responded(&self, target: &TargetState, status: u16, sent: Instant) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(sent);
        let now_us = self.group.clock.us_at(now);
        target.observe_latency(elapsed.as_nanos() as f64, now_us);
        target.metrics.response(status, elapsed.as_secs_f64());
        if let Some(mesh) = &self.group.mesh {
            crate::mesh::outlier::observe(self.group, mesh, target, status >= 500);
        }
    }

    /// The attempt on `target` failed; `reused` says whether its connection came from
    /// the pool. Ejects the target when it is to blame, and decides what happens next.
    pub(crate) fn failed(
        &mut self,
        target: &TargetState,
        reused: bool,
        failure: Failure,
    ) -> Verdict {
        if failure == Failure::Connect {
            if let Some(mesh) = &self.group.mesh {
                crate::mesh::outlier::observe(self.group, mesh, target, true);
            }
        }
        let may_go_again = match failure.retry() {
            Retry::Safe => true,
            Retry::IfReplayable => self.replayable,
            Retry::Never => false,
        };
        if !may_go_again {
            return Verdict::Answer(failure.status());
        }
        match failure {
            Failure::Unavailable => return self.elsewhere_after_503(target),
            // The target said it did not process the request: it may go again (even to
            // the same target), spending an attempt.
            Failure::Refused if self.spent < MAX_ATTEMPTS => return Verdict::Retry,
            Failure::Refused => return Verdict::Answer(failure.status()),
            _ => {}
        }
        if reused && self.stale_replays < MAX_STALE_REPLAYS {
            // Most likely the target closed the pooled connection as it sat idle (or as
            // the request went out): drop its other idle connections and go again
            // without spending an attempt.
            self.stale_replays += 1;
            self.spent = self.spent.saturating_sub(1);
            target.pool.clear();
            return Verdict::Retry;
        }
        // A target that could not take the request, or that failed it on a connection
        // opened just for it, is in trouble: eject it for a while.
        if failure.side() == Side::Upstream && (failure.stage() == Stage::NotSent || !reused) {
            target.connect_failed();
        }
        if self.excluded_len < MAX_ATTEMPTS {
            self.excluded[self.excluded_len] = target.addr;
            self.excluded_len += 1;
        }
        Verdict::Retry
    }

    /// A replayable request answered 503 goes again only when another try is sure: an
    /// attempt left, another target to take it, and a retry from the budget (taken now).
    /// Otherwise the client gets the 503.
    fn elsewhere_after_503(&mut self, target: &TargetState) -> Verdict {
        let give_up = Verdict::Answer(Failure::Unavailable.status());
        if self.spent >= MAX_ATTEMPTS
            || self.excluded_len >= MAX_ATTEMPTS
            || !self.group.has_other_target(target.addr, self.excluded())
            || !self.group.retry_budget.take_retry()
        {
            return give_up;
        }
        self.prepaid = true;
        self.excluded[self.excluded_len] = target.addr;
        self.excluded_len += 1;
        Verdict::Retry
    }
}

#[cfg(test)]
mod tests;
