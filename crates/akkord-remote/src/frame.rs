//! Connection preamble and length-prefixed framing.
//!
//! A connection starts with a 5-byte preamble, the 4-byte [`MAGIC`] and one [`Lane`] byte.
//! After it, each frame is a big-endian `u32` length followed by that many bytes of one
//! protobuf message. A frame longer than the lane's maximum, a stream that ends inside a
//! frame and a frame that does not decode are errors that close the connection.

use std::fmt;
use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// First four bytes of every connection.
pub const MAGIC: [u8; 4] = *b"AKKD";

/// Length of the preamble: magic and lane byte.
pub const PREAMBLE_LEN: usize = 5;

/// Length of the frame header, a big-endian `u32`.
pub const FRAME_HEADER_LEN: usize = 4;

/// Default maximum frame size of the control and ordinary lanes, 256 KiB (Akka's
/// `maximum-frame-size`).
pub const DEFAULT_MAX_FRAME_LEN: usize = 256 * 1024;

/// Default maximum frame size of the large lane, 2 MiB (Akka's `maximum-large-frame-size`).
pub const DEFAULT_MAX_LARGE_FRAME_LEN: usize = 2 * 1024 * 1024;

/// One of the three connections of an association.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    /// Handshake, heartbeats, system messages and their acknowledgements.
    Control = 0,
    /// User messages.
    Ordinary = 1,
    /// User messages to recipients that opted in, with a larger frame limit.
    Large = 2,
}

impl Lane {
    /// All lanes, in the order of their lane bytes.
    pub const ALL: [Lane; 3] = [Lane::Control, Lane::Ordinary, Lane::Large];

    /// Returns the lane of a lane byte.
    ///
    /// # Errors
    ///
    /// Returns [`FrameError::UnknownLane`] for a byte other than 0, 1 and 2.
    pub fn from_byte(byte: u8) -> Result<Lane, FrameError> {
        match byte {
            0 => Ok(Lane::Control),
            1 => Ok(Lane::Ordinary),
            2 => Ok(Lane::Large),
            other => Err(FrameError::UnknownLane(other)),
        }
    }

    /// Returns the lane byte of the preamble.
    pub fn to_byte(self) -> u8 {
        self as u8
    }

    /// Returns the index of the lane in [`Lane::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Returns the lowercase lane name used in logs.
    pub fn name(self) -> &'static str {
        match self {
            Lane::Control => "control",
            Lane::Ordinary => "ordinary",
            Lane::Large => "large",
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Malformed preamble or frame, or an I/O failure while reading one.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer's first four bytes are not [`MAGIC`]; it does not speak this protocol.
    #[error("wrong magic {0:02x?}: the peer does not speak the akkord protocol")]
    WrongMagic([u8; 4]),
    /// The lane byte is not 0 (control), 1 (ordinary) or 2 (large).
    #[error("unknown lane byte {0}: expected 0 (control), 1 (ordinary) or 2 (large)")]
    UnknownLane(u8),
    /// The peer announced a frame larger than the lane's maximum.
    #[error("oversized frame of {len} bytes: the maximum on this lane is {max} bytes")]
    Oversized {
        /// Announced frame length.
        len: usize,
        /// Maximum frame length of the lane.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("truncated frame: the stream ended with {buffered} bytes of an unfinished frame")]
    Truncated {
        /// Bytes of the unfinished frame that arrived.
        buffered: usize,
    },
    /// The frame is not a valid protobuf message of the expected type.
    #[error("undecodable frame: {0}")]
    Undecodable(#[from] prost::DecodeError),
    /// Reading or writing the connection failed.
    #[error("connection i/o failed: {0}")]
    Io(#[from] io::Error),
}

/// Returns the preamble that opens a connection on `lane`.
pub fn encode_preamble(lane: Lane) -> [u8; PREAMBLE_LEN] {
    let mut preamble = [0; PREAMBLE_LEN];
    preamble[..4].copy_from_slice(&MAGIC);
    preamble[4] = lane.to_byte();
    preamble
}

/// Checks a preamble and returns its lane.
///
/// # Errors
///
/// Returns [`FrameError::WrongMagic`] or [`FrameError::UnknownLane`].
pub fn decode_preamble(preamble: &[u8; PREAMBLE_LEN]) -> Result<Lane, FrameError> {
    let magic = [preamble[0], preamble[1], preamble[2], preamble[3]];
    if magic != MAGIC {
        return Err(FrameError::WrongMagic(magic));
    }
    Lane::from_byte(preamble[4])
}

/// Encodes `message` as one frame: length header and protobuf bytes.
///
/// # Errors
///
/// Returns [`FrameError::Oversized`] when the encoded message is longer than `max_len`.
pub fn encode_frame<M: prost::Message>(message: &M, max_len: usize) -> Result<Bytes, FrameError> {
    let len = message.encoded_len();
    if len > max_len || u32::try_from(len).is_err() {
        return Err(FrameError::Oversized { len, max: max_len });
    }
    let mut buffer = BytesMut::with_capacity(FRAME_HEADER_LEN + len);
    buffer.put_u32(len as u32);
    message
        .encode(&mut buffer)
        .map_err(|error| io::Error::other(error.to_string()))?;
    Ok(buffer.freeze())
}

/// Splits `bytes` into complete frame bodies, for tests and fuzzing.
///
/// # Errors
///
/// Returns the first [`FrameError`] the decoder reports; bytes left after the last complete
/// frame are [`FrameError::Truncated`].
pub fn split_frames(bytes: &[u8], max_len: usize) -> Result<Vec<Bytes>, FrameError> {
    let mut codec = FrameCodec::new(max_len);
    let mut buffer = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode_eof(&mut buffer)? {
        frames.push(frame);
    }
    Ok(frames)
}

/// Codec of length-prefixed frames with a maximum length.
///
/// The decoder returns frame bodies; the encoder writes a body with its length header.
#[derive(Clone, Copy, Debug)]
pub struct FrameCodec {
    max_len: usize,
}

impl FrameCodec {
    /// Creates a codec that rejects frames longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Self { max_len }
    }

    /// Returns the maximum frame length in bytes.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Reads the header of the frame at the start of `src` without consuming anything.
    ///
    /// Returns the body's length when the whole frame is in `src`, and `None` when more
    /// bytes are needed.
    ///
    /// # Errors
    ///
    /// Returns [`FrameError::Oversized`] when the header announces more than the maximum
    /// length, as [`Decoder::decode`] does.
    pub fn complete_body_len(&self, src: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(header) = src.first_chunk::<FRAME_HEADER_LEN>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*header) as usize;
        if len > self.max_len {
            return Err(FrameError::Oversized {
                len,
                max: self.max_len,
            });
        }
        Ok((src.len() - FRAME_HEADER_LEN >= len).then_some(len))
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if src.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max_len {
            return Err(FrameError::Oversized {
                len,
                max: self.max_len,
            });
        }
        let total = FRAME_HEADER_LEN + len;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(FRAME_HEADER_LEN);
        Ok(Some(src.split_to(len).freeze()))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated {
                buffered: src.len(),
            }),
        }
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        if body.len() > self.max_len {
            return Err(FrameError::Oversized {
                len: body.len(),
                max: self.max_len,
            });
        }
        dst.reserve(FRAME_HEADER_LEN + body.len());
        dst.put_u32(body.len() as u32);
        dst.extend_from_slice(&body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Ack;

    #[test]
    fn preamble_round_trips() {
        for lane in Lane::ALL {
            assert_eq!(decode_preamble(&encode_preamble(lane)).unwrap(), lane);
        }
    }

    #[test]
    fn preamble_rejects_wrong_magic() {
        let result = decode_preamble(b"HTTP/");
        assert!(matches!(result, Err(FrameError::WrongMagic(m)) if &m == b"HTTP"));
    }

    #[test]
    fn preamble_rejects_unknown_lane() {
        let mut preamble = encode_preamble(Lane::Large);
        preamble[4] = 3;
        assert!(matches!(
            decode_preamble(&preamble),
            Err(FrameError::UnknownLane(3))
        ));
    }

    #[test]
    fn decoder_waits_for_whole_frame() {
        let frame = encode_frame(
            &Ack {
                cumulative: 5,
                to_uid: 1,
            },
            100,
        )
        .unwrap();
        let mut codec = FrameCodec::new(100);
        let mut buffer = BytesMut::new();
        for &byte in &frame[..frame.len() - 1] {
            buffer.put_u8(byte);
            assert_eq!(codec.decode(&mut buffer).unwrap(), None);
        }
        buffer.put_u8(frame[frame.len() - 1]);
        let body = codec.decode(&mut buffer).unwrap().unwrap();
        assert_eq!(&body[..], &frame[FRAME_HEADER_LEN..]);
        assert!(buffer.is_empty());
    }

    #[test]
    fn body_len_needs_whole_frame() {
        let codec = FrameCodec::new(8);
        let frame = [0, 0, 0, 3, b'a', b'b', b'c', 0, 0];
        for end in 0..7 {
            assert_eq!(
                codec.complete_body_len(&frame[..end]).unwrap(),
                None,
                "{end}"
            );
        }
        // Bytes of a next frame do not count against this one.
        assert_eq!(codec.complete_body_len(&frame).unwrap(), Some(3));
        assert!(matches!(
            codec.complete_body_len(&[0, 0, 0, 9]),
            Err(FrameError::Oversized { len: 9, max: 8 })
        ));
    }

    #[test]
    fn decoder_rejects_oversized_header() {
        let mut buffer = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        let result = FrameCodec::new(1024).decode(&mut buffer);
        assert!(matches!(
            result,
            Err(FrameError::Oversized {
                len: 0xffff_ffff,
                max: 1024
            })
        ));
    }

    #[test]
    fn decoder_reports_truncation_at_eof() {
        let result = split_frames(&[0, 0, 0, 9, 1, 2], 100);
        assert!(matches!(result, Err(FrameError::Truncated { buffered: 6 })));
    }

    #[test]
    fn encoder_rejects_oversized_message() {
        let body = Bytes::from(vec![0; 11]);
        let result = FrameCodec::new(10).encode(body, &mut BytesMut::new());
        assert!(matches!(
            result,
            Err(FrameError::Oversized { len: 11, max: 10 })
        ));
    }
}
