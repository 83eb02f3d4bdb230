//! Properties of `circus_core::crypto`: the replay window against an exact
//! model, and sealing against tampering.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use circus_core::crypto::{
    CryptoError, Initiator, KnownPeer, Psk, REPLAY_WINDOW_WIDTH, ReplayWindow, Responder,
    SessionKeys, generate_keypair,
};
use circus_core::wire::{Packet, TAG_LEN};
use proptest::prelude::*;

const WIDTH: u64 = REPLAY_WINDOW_WIDTH;

/// How the next counter is chosen: relative to a base, or relative to the
/// highest accepted so far (to hit the window's edges exactly).
#[derive(Debug, Clone)]
enum Next {
    AboveBase(u64),
    BelowHighest(u64),
}

/// Counters near a base, with repeats, jumps, stragglers and edge cases.
fn counter_sequence() -> impl Strategy<Value = (u64, Vec<Next>)> {
    let next = prop_oneof![
        (0u64..64).prop_map(Next::AboveBase),
        (0u64..WIDTH).prop_map(Next::AboveBase),
        (0u64..3 * WIDTH).prop_map(Next::AboveBase),
        (0u64..20 * WIDTH).prop_map(Next::AboveBase),
        (0u64..WIDTH + 2).prop_map(Next::BelowHighest),
        (WIDTH - 2..WIDTH + 2).prop_map(Next::BelowHighest),
    ];
    (
        prop_oneof![Just(0u64), 0u64..(1 << 62)],
        prop::collection::vec(next, 1..600),
    )
}

/// Consecutive counters, shuffled within blocks of the window's width: each
/// arrives no more than `WIDTH - 1` behind the highest seen before it.
fn reordered_within_window() -> impl Strategy<Value = Vec<u64>> {
    let block = prop_oneof![Just(WIDTH), 1u64..=WIDTH];
    (0u64..(1 << 62), 1usize..4, block).prop_flat_map(|(base, blocks, block)| {
        let shuffled: Vec<_> = (0..blocks as u64)
            .map(|b| {
                Just((base + b * block..base + (b + 1) * block).collect::<Vec<_>>()).prop_shuffle()
            })
            .collect();
        shuffled.prop_map(|blocks| blocks.concat())
    })
}

proptest! {
    #[test]
    fn window_matches_the_model((base, steps) in counter_sequence()) {
        let mut window = ReplayWindow::new();
        let mut accepted = BTreeSet::new();
        for step in steps {
            let highest = accepted.last().copied();
            let counter = match step {
                Next::AboveBase(offset) => base + offset,
                Next::BelowHighest(delta) => highest.unwrap_or(base).saturating_sub(delta),
            };
            let in_window = highest.is_none_or(|h| counter > h || h - counter < WIDTH);
            let expected = in_window && !accepted.contains(&counter);
            prop_assert_eq!(window.check(counter), expected, "check {}", counter);
            prop_assert_eq!(window.commit(counter), expected, "commit {}", counter);
            if expected {
                accepted.insert(counter);
            }
            prop_assert!(!window.check(counter), "{} accepted twice", counter);
        }
    }

    #[test]
    fn reordering_within_the_window_loses_nothing(counters in reordered_within_window()) {
        let mut window = ReplayWindow::new();
        for &counter in &counters {
            prop_assert!(window.commit(counter), "in-window counter {} refused", counter);
        }
        for &counter in &counters {
            prop_assert!(!window.check(counter), "replay of {} accepted", counter);
        }
    }

    #[test]
    fn too_old_is_refused_and_check_alone_changes_nothing(
        highest in WIDTH..(1u64 << 62),
        age in prop_oneof![0u64..3 * WIDTH, WIDTH - 2..WIDTH + 2],
    ) {
        let mut window = ReplayWindow::new();
        prop_assert!(window.commit(highest));
        let counter = highest - age;
        let fresh = age > 0 && age < WIDTH;
        prop_assert_eq!(window.check(counter), fresh);
        // A packet that is checked but fails authentication is not committed.
        prop_assert_eq!(window.check(counter), fresh);
        prop_assert_eq!(window.highest(), Some(highest));
    }

    #[test]
    fn sealed_payloads_open_and_any_bit_flip_is_rejected(
        plaintext in prop::collection::vec(any::<u8>(), 0..1500),
        counter in any::<u64>().prop_map(|c| c >> 2),
        header in prop::collection::vec(any::<u8>(), 14),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let (client, gateway) = session_pair();
        let mut buf = vec![0u8; plaintext.len() + TAG_LEN];
        buf[..plaintext.len()].copy_from_slice(&plaintext);
        let sealed = client.seal(counter, &header, &mut buf, plaintext.len()).unwrap();
        prop_assert_eq!(sealed, buf.len());

        let mut tampered = buf.clone();
        let mut tampered_header = header.clone();
        let at = flip.index(tampered.len() + header.len());
        if at < header.len() {
            tampered_header[at] ^= 1 << bit;
        } else {
            tampered[at - header.len()] ^= 1 << bit;
        }
        prop_assert_eq!(
            gateway.open(counter, &tampered_header, &mut tampered),
            Err(CryptoError::AuthenticationFailed)
        );
        prop_assert_eq!(
            gateway.open(counter.wrapping_add(1), &header, &mut buf.clone()),
            Err(CryptoError::AuthenticationFailed),
            "the counter is part of the nonce"
        );
        let len = gateway.open(counter, &header, &mut buf).unwrap();
        prop_assert_eq!(&buf[..len], &plaintext[..]);
    }
}

/// One handshake's keys (client, gateway), shared by all cases: DH is slow
/// in debug builds and the property is about the AEAD, not the handshake.
fn session_pair() -> &'static (SessionKeys, SessionKeys) {
    static PAIR: OnceLock<(SessionKeys, SessionKeys)> = OnceLock::new();
    PAIR.get_or_init(|| {
        let (client, _) = generate_keypair().unwrap();
        let (gateway, gateway_public) = generate_keypair().unwrap();
        let psk = Psk::generate().unwrap();
        let mut init = [0u8; 256];
        let (mut initiator, init_len) =
            Initiator::start(&client, &gateway_public, &psk, 1, 1, &mut init).unwrap();
        let Ok(Packet::HandshakeInit(init)) = Packet::parse(&init[..init_len]) else {
            panic!("init does not parse");
        };
        let mut response = [0u8; 256];
        let accepted = Responder::new(gateway)
            .unwrap()
            .respond(
                &init,
                2,
                |_| {
                    Some(KnownPeer {
                        psk: &psk,
                        last_timestamp_ns: None,
                    })
                },
                &mut response,
            )
            .unwrap();
        let Ok(Packet::HandshakeResponse(response)) =
            Packet::parse(&response[..accepted.response_len])
        else {
            panic!("response does not parse");
        };
        let established = initiator.finish(&response).unwrap();
        (established.keys, accepted.session.keys)
    })
}
