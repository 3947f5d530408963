//! Overload: above its capacity a node refuses at once with RESOURCE_EXHAUSTED instead of
//! queueing without bound, and no single caller can take all of it.
//!
//! [`ShedLayer`] wraps a gRPC server: at most `max_inflight` calls are being answered at once
//! on the listener, and at most `max_inflight_per_caller` for one client certificate (an
//! operator, or a child node: villages behind one NAT address are still told apart by their
//! certificates). A call beyond either is answered RESOURCE_EXHAUSTED ("节点繁忙") without
//! reaching a handler; the caller retries later. A call counts until its response head is
//! sent (a streamed backup counts while it is prepared, not while it streams).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::http::{Request, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

type Connect = tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>;

/// The limits and the calls in flight of one listener.
pub struct Shed {
    all: Arc<Semaphore>,
    per_caller: usize,
    callers: Mutex<HashMap<Vec<u8>, usize>>,
}

impl Shed {
    pub fn new(max_inflight: usize, max_inflight_per_caller: usize) -> Arc<Shed> {
        Arc::new(Shed {
            all: Arc::new(Semaphore::new(max_inflight)),
            per_caller: max_inflight_per_caller,
            callers: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one call of `caller`, or why not.
    fn admit(self: &Arc<Self>, caller: Option<Vec<u8>>) -> Result<Admitted, &'static str> {
        let Ok(permit) = self.all.clone().try_acquire_owned() else {
            return Err("the node is at its limit of calls in flight (节点繁忙，请稍后重试)");
        };
        if let Some(key) = &caller {
            let mut callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
            let n = callers.entry(key.clone()).or_insert(0);
            if *n >= self.per_caller {
                return Err(
                    "this caller is at its limit of calls in flight (调用过于频繁，请稍后重试)",
                );
            }
            *n += 1;
        }
        Ok(Admitted {
            shed: self.clone(),
            caller,
            _permit: permit,
        })
    }
}

/// One admitted call; its place is given back when dropped.
struct Admitted {
    shed: Arc<Shed>,
    caller: Option<Vec<u8>>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(key) = self.caller.take() {
            let mut callers = self.shed.callers.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = callers.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    callers.remove(&key);
                }
            }
        }
    }
}

/// The client certificate of a request, as the key of its caller.
fn caller_of<B>(req: &Request<B>) -> Option<Vec<u8>> {
    let leaf = req.extensions().get::<Connect>()?.peer_certs()?;
    let leaf = leaf.first()?;
    Some(
        ring::digest::digest(&ring::digest::SHA256, leaf.as_ref())
            .as_ref()
            .to_vec(),
    )
}

#[derive(Clone)]
pub struct ShedLayer(pub Arc<Shed>);

impl<S> tower::Layer<S> for ShedLayer {
    type Service = ShedService<S>;
    fn layer(&self, inner: S) -> ShedService<S> {
        ShedService {
            inner,
            shed: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ShedService<S> {
    inner: S,
    shed: Arc<Shed>,
}

impl<S, B, R> tower::Service<Request<B>> for ShedService<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.shed.admit(caller_of(&req)) {
            Ok(admitted) => {
                let answer = self.inner.call(req);
                Box::pin(async move {
                    let res = answer.await;
                    drop(admitted);
                    res
                })
            }
            Err(why) => {
                tracing::debug!(why, "call shed");
                let res = tonic::Status::resource_exhausted(why).into_http::<R>();
                Box::pin(async move { Ok(res) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_in_all_and_per_caller_give_back_their_places() {
        let shed = Shed::new(3, 2);
        let a = || Some(b"a".to_vec());
        let first = shed.admit(a()).unwrap();
        let second = shed.admit(a()).unwrap();
        assert!(shed.admit(a()).is_err(), "a is at its own limit");
        let other = shed.admit(Some(b"b".to_vec())).unwrap();
        assert!(shed.admit(Some(b"c".to_vec())).is_err(), "the node is full");
        drop(first);
        assert!(shed.admit(a()).is_ok(), "a place given back");
        drop((second, other));
        assert!(shed.callers.lock().unwrap().len() <= 1);
    }

    #[tokio::test]
    async fn a_call_beyond_the_limit_is_resource_exhausted() {
        use tower::{Layer, Service, ServiceExt};
        let (release, wait) = tokio::sync::watch::channel(false);
        let inner = tower::service_fn(move |_req: Request<()>| {
            let mut wait = wait.clone();
            async move {
                let _ = wait.wait_for(|go| *go).await;
                Ok::<_, std::convert::Infallible>(Response::new(String::new()))
            }
        });
        let mut svc = ShedLayer(Shed::new(1, 1)).layer(inner);
        let held = svc.ready().await.unwrap().call(Request::new(()));
        let held = tokio::spawn(held);
        tokio::task::yield_now().await;
        let refused = svc
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        assert_eq!(
            refused
                .headers()
                .get("grpc-status")
                .map(|v| v.to_str().unwrap()),
            Some("8"),
            "RESOURCE_EXHAUSTED"
        );
        release.send_replace(true);
        let done = held.await.unwrap().unwrap();
        assert!(done.headers().get("grpc-status").is_none());
        let again = svc
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        assert!(
            again.headers().get("grpc-status").is_none(),
            "its place was given back"
        );
    }
}
