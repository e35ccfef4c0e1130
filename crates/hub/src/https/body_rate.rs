//! A request body that must keep arriving: after a grace period, at least a minimum
//! number of bytes a second on average, so a client sending a byte now and then cannot
//! hold a connection and a request task for ever.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
#[error("the request body arrived slower than {0} bytes a second; send it without pauses")]
pub struct BodyTooSlow(u64);

pub struct MinRateBody<B> {
    inner: B,
    start: Instant,
    grace: Duration,
    bytes_per_second: u64,
    received: u64,
    deadline: Pin<Box<Sleep>>,
    done: bool,
}

impl<B> MinRateBody<B> {
    /// `inner` at no less than `bytes_per_second` after `grace` (0: no minimum).
    pub fn new(inner: B, bytes_per_second: u64, grace: Duration) -> Self {
        let start = Instant::now();
        MinRateBody {
            inner,
            start,
            grace,
            bytes_per_second,
            received: 0,
            deadline: Box::pin(tokio::time::sleep_until(start + grace)),
            done: bytes_per_second == 0,
        }
    }

    /// When the body is late if nothing more arrives.
    fn due(&self) -> Instant {
        let earned = Duration::from_secs_f64(self.received as f64 / self.bytes_per_second as f64);
        self.start + self.grace + earned
    }
}

impl<B> Body for MinRateBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if !this.done {
                    this.received += frame.data_ref().map_or(0, |d| d.len() as u64);
                    let due = this.due();
                    this.deadline.as_mut().reset(due);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => {
                this.done = true;
                Poll::Ready(other.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                if !this.done && this.deadline.as_mut().poll(cx).is_ready() {
                    this.done = true;
                    return Poll::Ready(Some(Err(BodyTooSlow(this.bytes_per_second).into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::mpsc;

    type Chunks = mpsc::UnboundedSender<Result<Bytes, std::io::Error>>;

    fn chunked(bytes_per_second: u64) -> (Chunks, MinRateBody<axum::body::Body>) {
        let (tx, rx) = mpsc::unbounded();
        let inner = axum::body::Body::from_stream(rx);
        (
            tx,
            MinRateBody::new(inner, bytes_per_second, Duration::from_secs(1)),
        )
    }

    /// The next frame's data length, the error's text, or None while nothing is ready.
    fn poll_next(body: &mut MinRateBody<axum::body::Body>) -> Option<Result<usize, String>> {
        let waker = futures::task::noop_waker();
        match Pin::new(body).poll_frame(&mut Context::from_waker(&waker)) {
            Poll::Pending => None,
            Poll::Ready(None) => Some(Ok(0)),
            Poll::Ready(Some(Ok(f))) => Some(Ok(f.data_ref().map_or(0, |d| d.len()))),
            Poll::Ready(Some(Err(e))) => Some(Err(e.to_string())),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_is_cut_off_once_its_allowance_is_spent() {
        let (tx, mut body) = chunked(100);
        tx.unbounded_send(Ok(Bytes::from(vec![0u8; 50]))).unwrap();
        assert_eq!(poll_next(&mut body), Some(Ok(50)));
        // Allowed until 1 s of grace plus 50 bytes at 100 a second: 1.5 s.
        tokio::time::advance(Duration::from_millis(1400)).await;
        assert_eq!(poll_next(&mut body), None);
        tokio::time::advance(Duration::from_millis(200)).await;
        let err = poll_next(&mut body).unwrap().unwrap_err();
        assert!(err.contains("slower than 100 bytes a second"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_up_arrives_whole_and_no_minimum_never_cuts() {
        let (tx, mut body) = chunked(100);
        for _ in 0..5 {
            tokio::time::advance(Duration::from_millis(900)).await;
            tx.unbounded_send(Ok(Bytes::from(vec![0u8; 100]))).unwrap();
            assert_eq!(poll_next(&mut body), Some(Ok(100)));
        }
        drop(tx);
        assert_eq!(poll_next(&mut body), Some(Ok(0)));

        let (_tx, mut body) = chunked(0);
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(poll_next(&mut body), None);
    }
}
