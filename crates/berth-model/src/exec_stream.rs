//! The frames of an interactive exec session (`berth exec -i/-t`): what the caller sends
//! ([`InputFrame`]: stdin bytes, stdin closed, a terminal resize) and what the command
//! gives back ([`OutputFrame`]: stdout bytes, stderr bytes, the exit code, or why the
//! session failed), and their binary encoding on a byte stream.
//!
//! A frame is one kind byte, the payload's length as a big-endian `u32`, then the payload:
//!
//! ```text
//! kind  direction  payload
//! 0x01  input      stdin bytes
//! 0x02  input      (none): stdin is closed, the command reads end of file
//! 0x03  input      rows u16, columns u16 (big-endian): the terminal's new size
//! 0x81  output     stdout bytes (with a terminal, everything the command writes)
//! 0x82  output     stderr bytes (only without a terminal)
//! 0x83  output     exit code i32 (big-endian); the last frame of a session
//! 0x84  output     UTF-8 message: the session failed; the last frame of a session
//! ```
//!
//! A payload is at most [`MAX_FRAME_PAYLOAD`] bytes; writers cut longer data into several
//! frames ([`OutputFrame::encode`] does not: the caller sends reads of at most that size).
//!
//! What it does not do: any I/O. The same frames travel through the API's upgraded
//! connection and, between a control plane and its nodes, through the `TaskNodes` seam.

use std::marker::PhantomData;

/// The `Upgrade` protocol name of an exec session on the API.
pub const UPGRADE_PROTOCOL: &str = "berth-exec";

/// The largest payload a frame may carry.
pub const MAX_FRAME_PAYLOAD: usize = 1 << 20;

/// Bytes before a frame's payload: the kind and the length.
const HEADER_LEN: usize = 5;

const STDIN: u8 = 0x01;
const STDIN_CLOSED: u8 = 0x02;
const RESIZE: u8 = 0x03;
const STDOUT: u8 = 0x81;
const STDERR: u8 = 0x82;
const EXIT: u8 = 0x83;
const ERROR: u8 = 0x84;

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    pub rows: u16,
    pub cols: u16,
}

/// What the caller of a session sends to the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputFrame {
    /// Bytes for the command's stdin.
    Stdin(Vec<u8>),
    /// The command's stdin is closed (it reads end of file).
    StdinClosed,
    /// The caller's terminal changed size (ignored without a terminal).
    Resize(WindowSize),
}

/// What a session gives back: output as it comes, then one [`OutputFrame::Exit`] or
/// [`OutputFrame::Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputFrame {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The command ended with this exit code (128 + n when signal n ended it).
    Exit(i32),
    /// The session failed; the command's exit code is not known.
    Error(String),
}

/// A frame that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("exec stream: unknown frame kind {kind:#04x}")]
    UnknownKind { kind: u8 },
    #[error("exec stream: a frame of kind {kind:#04x} announces {len} bytes; at most {MAX_FRAME_PAYLOAD} are allowed")]
    TooLong { kind: u8, len: usize },
    #[error(
        "exec stream: a frame of kind {kind:#04x} carries {len} bytes; it takes exactly {expected}"
    )]
    BadLength {
        kind: u8,
        len: usize,
        expected: usize,
    },
    #[error("exec stream: an error frame's message is not UTF-8")]
    NotUtf8,
}

/// A frame kind of one direction: its encoding and decoding.
pub trait Frame: Sized {
    /// Appends the frame's bytes to `out`.
    fn encode_into(&self, out: &mut Vec<u8>);

    /// The frame of `kind` with `payload`, or why there is none.
    fn decode(kind: u8, payload: &[u8]) -> Result<Self, FrameError>;

    /// The frame's bytes.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

fn put(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

fn exactly<const N: usize>(kind: u8, payload: &[u8]) -> Result<[u8; N], FrameError> {
    payload.try_into().map_err(|_| FrameError::BadLength {
        kind,
        len: payload.len(),
        expected: N,
    })
}

impl Frame for InputFrame {
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            InputFrame::Stdin(b) => put(out, STDIN, b),
            InputFrame::StdinClosed => put(out, STDIN_CLOSED, &[]),
            InputFrame::Resize(size) => {
                let [r0, r1] = size.rows.to_be_bytes();
                let [c0, c1] = size.cols.to_be_bytes();
                put(out, RESIZE, &[r0, r1, c0, c1]);
            }
        }
    }

    fn decode(kind: u8, payload: &[u8]) -> Result<Self, FrameError> {
        match kind {
            STDIN => Ok(InputFrame::Stdin(payload.to_vec())),
            STDIN_CLOSED => exactly::<0>(kind, payload).map(|_| InputFrame::StdinClosed),
            RESIZE => {
                let [r0, r1, c0, c1] = exactly::<4>(kind, payload)?;
                Ok(InputFrame::Resize(WindowSize {
                    rows: u16::from_be_bytes([r0, r1]),
                    cols: u16::from_be_bytes([c0, c1]),
                }))
            }
            _ => Err(FrameError::UnknownKind { kind }),
        }
    }
}

impl Frame for OutputFrame {
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            OutputFrame::Stdout(b) => put(out, STDOUT, b),
            OutputFrame::Stderr(b) => put(out, STDERR, b),
            OutputFrame::Exit(code) => put(out, EXIT, &code.to_be_bytes()),
            OutputFrame::Error(message) => put(out, ERROR, message.as_bytes()),
        }
    }

    fn decode(kind: u8, payload: &[u8]) -> Result<Self, FrameError> {
        match kind {
            STDOUT => Ok(OutputFrame::Stdout(payload.to_vec())),
            STDERR => Ok(OutputFrame::Stderr(payload.to_vec())),
            EXIT => exactly::<4>(kind, payload).map(|b| OutputFrame::Exit(i32::from_be_bytes(b))),
            ERROR => String::from_utf8(payload.to_vec())
                .map(OutputFrame::Error)
                .map_err(|_| FrameError::NotUtf8),
            _ => Err(FrameError::UnknownKind { kind }),
        }
    }
}

impl OutputFrame {
    /// The last frame of a session: an exit code or an error.
    pub fn is_last(&self) -> bool {
        matches!(self, OutputFrame::Exit(_) | OutputFrame::Error(_))
    }
}

/// Reads frames of one direction out of bytes as they arrive, in pieces of any size.
#[derive(Debug)]
pub struct FrameDecoder<F> {
    buf: Vec<u8>,
    frames: PhantomData<F>,
}

impl<F: Frame> Default for FrameDecoder<F> {
    fn default() -> Self {
        Self {
            buf: Vec::new(),
            frames: PhantomData,
        }
    }
}

impl<F: Frame> FrameDecoder<F> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `None` when more bytes are needed. An error leaves the
    /// stream unreadable: the caller drops it.
    pub fn next_frame(&mut self) -> Result<Option<F>, FrameError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let kind = self.buf[0];
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME_PAYLOAD {
            return Err(FrameError::TooLong { kind, len });
        }
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let frame = F::decode(kind, &self.buf[HEADER_LEN..HEADER_LEN + len]);
        self.buf.drain(..HEADER_LEN + len);
        frame.map(Some)
    }

    /// Bytes received that do not make a whole frame yet (a stream that ends with some
    /// was cut short).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all<F: Frame>(bytes: &[u8]) -> Vec<F> {
        let mut d = FrameDecoder::<F>::new();
        d.push(bytes);
        let mut out = Vec::new();
        while let Some(f) = d.next_frame().unwrap() {
            out.push(f);
        }
        assert_eq!(d.pending(), 0);
        out
    }

    #[test]
    fn every_frame_reads_back_as_written() {
        let input = vec![
            InputFrame::Stdin(b"echo hi\n".to_vec()),
            InputFrame::Stdin(vec![]),
            InputFrame::Resize(WindowSize {
                rows: 40,
                cols: 0x1234,
            }),
            InputFrame::StdinClosed,
        ];
        let bytes: Vec<u8> = input.iter().flat_map(|f| f.encode()).collect();
        assert_eq!(decode_all::<InputFrame>(&bytes), input);

        let output = vec![
            OutputFrame::Stdout(b"hi\n".to_vec()),
            OutputFrame::Stderr(vec![0, 1, 2, 0xff]),
            OutputFrame::Exit(-1),
            OutputFrame::Error("no such container".into()),
        ];
        let bytes: Vec<u8> = output.iter().flat_map(|f| f.encode()).collect();
        assert_eq!(decode_all::<OutputFrame>(&bytes), output);
    }

    #[test]
    fn the_layout_is_kind_length_payload() {
        assert_eq!(
            OutputFrame::Exit(3).encode(),
            [0x83, 0, 0, 0, 4, 0, 0, 0, 3]
        );
        assert_eq!(
            InputFrame::Resize(WindowSize { rows: 24, cols: 80 }).encode(),
            [0x03, 0, 0, 0, 4, 0, 24, 0, 80]
        );
        assert_eq!(InputFrame::StdinClosed.encode(), [0x02, 0, 0, 0, 0]);
    }

    #[test]
    fn frames_split_across_reads_come_out_whole() {
        let bytes = [
            OutputFrame::Stdout(b"hello".to_vec()).encode(),
            OutputFrame::Exit(3).encode(),
        ]
        .concat();
        let mut d = FrameDecoder::<OutputFrame>::new();
        let mut got = Vec::new();
        for b in &bytes {
            d.push(std::slice::from_ref(b));
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            [OutputFrame::Stdout(b"hello".to_vec()), OutputFrame::Exit(3)]
        );
        d.push(&[0x81, 0, 0]);
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(d.pending(), 3);
    }

    #[test]
    fn bad_frames_are_refused_with_what_is_wrong() {
        let mut d = FrameDecoder::<InputFrame>::new();
        d.push(&[0x81, 0, 0, 0, 0]);
        let e = d.next_frame().unwrap_err();
        assert_eq!(e, FrameError::UnknownKind { kind: 0x81 });
        assert_eq!(e.to_string(), "exec stream: unknown frame kind 0x81");

        let mut d = FrameDecoder::<OutputFrame>::new();
        d.push(&[0x81, 0x00, 0x10, 0x00, 0x01]);
        assert_eq!(
            d.next_frame().unwrap_err(),
            FrameError::TooLong {
                kind: 0x81,
                len: MAX_FRAME_PAYLOAD + 1
            }
        );

        let mut d = FrameDecoder::<OutputFrame>::new();
        d.push(&[0x83, 0, 0, 0, 2, 0, 3]);
        let e = d.next_frame().unwrap_err();
        assert_eq!(
            e.to_string(),
            "exec stream: a frame of kind 0x83 carries 2 bytes; it takes exactly 4"
        );

        let mut d = FrameDecoder::<OutputFrame>::new();
        d.push(&[0x84, 0, 0, 0, 1, 0xff]);
        assert_eq!(d.next_frame().unwrap_err(), FrameError::NotUtf8);
    }

    #[test]
    fn only_exit_and_error_end_a_session() {
        assert!(OutputFrame::Exit(0).is_last());
        assert!(OutputFrame::Error("x".into()).is_last());
        assert!(!OutputFrame::Stdout(vec![]).is_last());
        assert!(!OutputFrame::Stderr(vec![]).is_last());
    }
}
