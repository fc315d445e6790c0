//! Entry points of the fuzz targets, also run by this crate's tests over a seeded corpus.
//!
//! Each function takes arbitrary bytes and must return without panicking, whatever they are.

use akkord_actor::address::{Address, UniqueAddress};
use bytes::Bytes;
use prost::Message;

use crate::frame::{decode_preamble, split_frames, Lane, DEFAULT_MAX_FRAME_LEN, PREAMBLE_LEN};
use crate::handshake::{
    check_response, HandshakeAcceptor, HandshakeProgress, InboundHandshake, SharedSecret,
};
use crate::wire::{ControlFrame, HandshakeResponse, UserEnvelope};

/// Decodes `data` as a connection after the handshake: preamble, then frames of the lane's
/// message type.
pub fn frame_input(data: &[u8]) {
    let Some((preamble, rest)) = data.split_first_chunk::<PREAMBLE_LEN>() else {
        return;
    };
    let lane = decode_preamble(preamble).unwrap_or(Lane::Ordinary);
    let Ok(frames) = split_frames(rest, DEFAULT_MAX_FRAME_LEN) else {
        return;
    };
    for frame in frames {
        decode_lane_frame(lane, frame);
    }
}

/// Feeds `data` to the server side of a handshake in chunks whose sizes come from the first
/// byte, and decodes it as a response on the client side.
pub fn handshake_input(data: &[u8]) {
    let Some((&chunk_seed, rest)) = data.split_first() else {
        return;
    };
    let local = UniqueAddress::new(
        Address::new("fuzz", "127.0.0.1", 2552).expect("constant address is valid"),
        7,
    );
    let secret = (chunk_seed & 1 == 1).then(|| SharedSecret::new("fuzz-secret"));
    let mut handshake = InboundHandshake::new(HandshakeAcceptor::new(local.clone(), secret));
    let chunk = usize::from(chunk_seed >> 1).max(1);
    let is_quarantined = |peer: &UniqueAddress| peer.uid == 13;
    for piece in rest.chunks(chunk) {
        match handshake.feed(piece, &is_quarantined) {
            HandshakeProgress::NeedMore => {}
            HandshakeProgress::Accepted { lane, leftover, .. } => {
                if let Ok(frames) = split_frames(&leftover, DEFAULT_MAX_FRAME_LEN) {
                    for frame in frames {
                        decode_lane_frame(lane, frame);
                    }
                }
                break;
            }
            HandshakeProgress::Rejected { .. } | HandshakeProgress::Failed(_) => break,
        }
    }
    if let Ok(response) = HandshakeResponse::decode(rest) {
        let _ = check_response(&response, &local.address, Some(local.uid));
    }
}

fn decode_lane_frame(lane: Lane, frame: Bytes) {
    match lane {
        Lane::Control => {
            if let Ok(control) = ControlFrame::decode(frame) {
                assert_eq!(control.encode_to_vec().len(), control.encoded_len());
            }
        }
        Lane::Ordinary | Lane::Large => {
            if let Ok(envelope) = UserEnvelope::decode(frame) {
                assert_eq!(envelope.encode_to_vec().len(), envelope.encoded_len());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::frame::{encode_frame, encode_preamble};
    use crate::handshake::{build_request, MAX_HANDSHAKE_FRAME_LEN};

    /// Valid inputs, so mutations explore the paths after the checks.
    fn seeds() -> Vec<Vec<u8>> {
        let local = UniqueAddress::new(Address::new("fuzz", "127.0.0.1", 2552).unwrap(), 7);
        let peer = UniqueAddress::new(Address::new("fuzz", "127.0.0.1", 2553).unwrap(), 8);
        let mut seeds = Vec::new();
        for lane in Lane::ALL {
            let request = build_request(&peer, Some(&local), lane, None);
            let mut bytes = vec![0x20];
            bytes.extend_from_slice(&encode_preamble(lane));
            bytes.extend_from_slice(&encode_frame(&request, MAX_HANDSHAKE_FRAME_LEN).unwrap());
            let envelope = UserEnvelope {
                recipient: 3,
                sender: None,
                manifest: "m".into(),
                payload: Bytes::from_static(b"payload"),
            };
            bytes.extend_from_slice(&encode_frame(&envelope, 1024).unwrap());
            seeds.push(bytes);
        }
        seeds
    }

    fn mutate(input: &[u8], rng: &mut SmallRng) -> Vec<u8> {
        let mut output = input.to_vec();
        for _ in 0..rng.random_range(1..8) {
            let roll = rng.random_range(0..4);
            if output.is_empty() || roll == 0 {
                output.push(rng.random());
            } else if roll == 1 {
                let at = rng.random_range(0..output.len());
                output[at] = rng.random();
            } else if roll == 2 {
                let at = rng.random_range(0..output.len());
                output.truncate(at);
            } else {
                let at = rng.random_range(0..output.len());
                output.insert(at, rng.random());
            }
        }
        output
    }

    #[test]
    fn targets_survive_seeded_corpus() {
        let mut rng = SmallRng::seed_from_u64(0x5eed);
        let seeds = seeds();
        for seed in &seeds {
            handshake_input(seed);
            frame_input(&seed[1..]);
        }
        for _ in 0..20_000 {
            let seed = &seeds[rng.random_range(0..seeds.len())];
            let input = mutate(seed, &mut rng);
            handshake_input(&input);
            frame_input(&input);
        }
        for len in 0..64 {
            let random: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            handshake_input(&random);
            frame_input(&random);
        }
    }
}
