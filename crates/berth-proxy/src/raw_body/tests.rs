use super::*;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A body reading a target connection that sends `parts` (one write each, in order)
/// and then closes, with `head_rest` already read.
async fn body_over(parts: Vec<&'static [u8]>, state: State, keep_alive: bool) -> RawBody {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let client = TcpStream::connect(addr).await.unwrap();
    let (mut server, _) = l.accept().await.unwrap();
    tokio::spawn(async move {
        for p in parts {
            server.write_all(p).await.unwrap();
            server.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    RawBody {
        conn: Some(UpConn::Plain(client)),
        buf: BytesMut::new(),
        state,
        keep_alive,
        in_flight: None,
        bytes: IntCounter::new("test_bytes", "bytes").unwrap(),
        mesh_bytes: None,
    }
}

/// The body's data and trailers, or the error it broke off with.
async fn collect(mut b: RawBody) -> Result<(Vec<u8>, Option<HeaderMap>), RawBodyError> {
    let mut data = Vec::new();
    let mut trailers = None;
    while let Some(f) = std::future::poll_fn(|cx| b.poll_frame(cx)).await {
        let f = f?;
        if let Some(d) = f.data_ref() {
            assert!(!d.is_empty(), "no empty data frames");
            data.extend_from_slice(d);
        } else {
            trailers = Some(f.into_trailers().ok().unwrap());
        }
    }
    assert!(b.is_end_stream());
    assert_eq!(b.bytes.get(), data.len() as u64, "bytes counted");
    Ok((data, trailers))
}

#[tokio::test]
async fn chunked_body_is_decoded_with_its_trailers() {
    let b = body_over(
        vec![
            b"5\r\nhel",
            b"lo\r\n6;x=1\r\n world\r\n0\r\n",
            b"x-t: 1\r\n",
            b"\r\n",
        ],
        State::Chunked(ChunkedDecoder::default()),
        true,
    )
    .await;
    let (data, trailers) = collect(b).await.unwrap();
    assert_eq!(data, b"hello world");
    let t = trailers.expect("trailers");
    assert_eq!(t["x-t"], "1");
    assert_eq!(t.len(), 1);
}

#[tokio::test]
async fn chunked_body_without_trailers_ends_with_its_data() {
    let b = body_over(
        vec![b"3\r\nabc\r\n0\r\n\r\n"],
        State::Chunked(ChunkedDecoder::default()),
        true,
    )
    .await;
    let (data, trailers) = collect(b).await.unwrap();
    assert_eq!(data, b"abc");
    assert!(trailers.is_none());
}

#[tokio::test]
async fn malformed_chunked_body_breaks_off() {
    let b = body_over(
        vec![b"3\r\nabcXX"],
        State::Chunked(ChunkedDecoder::default()),
        true,
    )
    .await;
    assert!(matches!(collect(b).await, Err(RawBodyError::Malformed)));
}

#[tokio::test]
async fn length_body_streams_to_its_end_and_no_further() {
    let b = body_over(vec![b"0123", b"456789", b"EXTRA"], State::Length(10), true).await;
    let (data, _) = collect(b).await.unwrap();
    assert_eq!(data, b"0123456789");
}

#[tokio::test]
async fn truncated_length_body_is_an_error() {
    let b = body_over(vec![b"0123"], State::Length(10), true).await;
    assert!(matches!(collect(b).await, Err(RawBodyError::Truncated)));
}

#[tokio::test]
async fn close_delimited_body_ends_when_the_target_closes() {
    let b = body_over(vec![b"abc", b"def"], State::Close, false).await;
    let (data, _) = collect(b).await.unwrap();
    assert_eq!(data, b"abcdef");
}

#[test]
fn trailers_drop_hop_by_hop_and_framing_fields() {
    let fields = [
        httparse::Header {
            name: "grpc-status",
            value: b"0",
        },
        httparse::Header {
            name: "Transfer-Encoding",
            value: b"chunked",
        },
        httparse::Header {
            name: "content-length",
            value: b"5",
        },
    ];
    let t = trailer_map(&fields).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t["grpc-status"], "0");
    let bad = [httparse::Header {
        name: "x",
        value: b"a\x00b",
    }];
    assert!(trailer_map(&bad).is_none());
}
