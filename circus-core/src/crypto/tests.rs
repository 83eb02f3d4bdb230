//! End-to-end handshake and session tests through the public API.

use super::*;
use crate::wire::{
    HANDSHAKE_INIT_LEN, HandshakeInit, HandshakeResponse, Packet, TAG_LEN, TRANSPORT_HEADER_LEN,
    TransportHeader,
};

const CLIENT_INDEX: u32 = 0x1111;
const GATEWAY_INDEX: u32 = 0x2222;
const T0: u64 = 1_764_000_000_123_456_789;

struct Peers {
    client: StaticSecret,
    gateway: Responder,
    gateway_public: PublicKey,
    psk: Psk,
}

fn peers() -> Peers {
    let (client, _) = generate_keypair().unwrap();
    let (gateway, gateway_public) = generate_keypair().unwrap();
    Peers {
        client,
        gateway: Responder::new(gateway).unwrap(),
        gateway_public,
        psk: Psk::generate().unwrap(),
    }
}

fn start(peers: &Peers, time_ns: u64, out: &mut [u8]) -> (Initiator, usize) {
    Initiator::start(
        &peers.client,
        &peers.gateway_public,
        &peers.psk,
        CLIENT_INDEX,
        time_ns,
        out,
    )
    .unwrap()
}

fn as_init(bytes: &[u8]) -> HandshakeInit<'_> {
    match Packet::parse(bytes) {
        Ok(Packet::HandshakeInit(init)) => init,
        other => panic!("expected an init, got {other:?}"),
    }
}

fn as_response(bytes: &[u8]) -> HandshakeResponse<'_> {
    match Packet::parse(bytes) {
        Ok(Packet::HandshakeResponse(response)) => response,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn known(psk: &Psk, last_timestamp_ns: Option<u64>) -> Option<KnownPeer<'_>> {
    Some(KnownPeer {
        psk,
        last_timestamp_ns,
    })
}

/// Runs a full handshake; returns (client session, gateway acceptance).
fn handshake(peers: &Peers) -> (Established, Accepted) {
    let mut init_buf = [0u8; 256];
    let (mut initiator, init_len) = start(peers, T0, &mut init_buf);
    let mut response_buf = [0u8; 256];
    let accepted = peers
        .gateway
        .respond(
            &as_init(&init_buf[..init_len]),
            GATEWAY_INDEX,
            |_| known(&peers.psk, None),
            &mut response_buf,
        )
        .unwrap();
    let client = initiator
        .finish(&as_response(&response_buf[..accepted.response_len]))
        .unwrap();
    (client, accepted)
}

/// Builds a transport packet from `sender` carrying `plaintext`.
fn transport(keys: &SessionKeys, receiver_index: u32, counter: u64, plaintext: &[u8]) -> Vec<u8> {
    let mut packet = vec![0u8; TRANSPORT_HEADER_LEN + plaintext.len() + TAG_LEN];
    let header = TransportHeader {
        receiver_index,
        counter,
    };
    header.emit(&mut packet).unwrap();
    let (header, body) = packet.split_at_mut(TRANSPORT_HEADER_LEN);
    body[..plaintext.len()].copy_from_slice(plaintext);
    keys.seal(counter, header, body, plaintext.len()).unwrap();
    packet
}

/// Parses and opens a transport packet; returns the plaintext.
fn open(keys: &SessionKeys, packet: &mut [u8]) -> Result<Vec<u8>, CryptoError> {
    let counter = match Packet::parse(packet) {
        Ok(Packet::Transport(transport)) => transport.header.counter,
        other => panic!("expected transport, got {other:?}"),
    };
    let (header, body) = packet.split_at_mut(TRANSPORT_HEADER_LEN);
    let len = keys.open(counter, header, body)?;
    Ok(body[..len].to_vec())
}

#[test]
fn handshake_yields_matching_keys_in_both_directions() {
    let peers = peers();
    let (client, accepted) = handshake(&peers);
    assert_eq!(accepted.peer, peers.client.public_key());
    assert_eq!(accepted.timestamp_ns, T0);
    assert_eq!(accepted.session.remote_index, CLIENT_INDEX);
    assert_eq!(client.remote_index, GATEWAY_INDEX);

    let mut up = transport(&client.keys, GATEWAY_INDEX, 0, b"to the gateway");
    assert_eq!(
        open(&accepted.session.keys, &mut up).unwrap(),
        b"to the gateway"
    );
    let mut down = transport(&accepted.session.keys, CLIENT_INDEX, 0, b"to the client");
    assert_eq!(open(&client.keys, &mut down).unwrap(), b"to the client");
}

#[test]
fn every_tampered_byte_is_rejected() {
    let peers = peers();
    let (client, accepted) = handshake(&peers);
    let packet = transport(&client.keys, GATEWAY_INDEX, 7, b"payload");
    // Header (associated data), ciphertext and tag alike.
    for at in 0..packet.len() {
        let mut tampered = packet.clone();
        tampered[at] ^= 0x01;
        if Packet::parse(&tampered).is_err() {
            continue; // version or type byte: refused before decryption
        }
        assert_eq!(
            open(&accepted.session.keys, &mut tampered),
            Err(CryptoError::AuthenticationFailed),
            "byte {at} flipped"
        );
    }
}

#[test]
fn response_is_smaller_than_init() {
    let peers = peers();
    let mut init_buf = [0u8; 256];
    let (_, init_len) = start(&peers, T0, &mut init_buf);
    let mut response_buf = [0u8; 256];
    let accepted = peers
        .gateway
        .respond(
            &as_init(&init_buf[..init_len]),
            GATEWAY_INDEX,
            |_| known(&peers.psk, None),
            &mut response_buf,
        )
        .unwrap();
    assert_eq!(init_len, HANDSHAKE_INIT_LEN);
    assert!(accepted.response_len < init_len);
}

#[test]
fn wrong_psk_is_detected_by_the_initiator_on_message_two() {
    let peers = peers();
    let other_psk = Psk::generate().unwrap();
    let mut init_buf = [0u8; 256];
    let (mut initiator, init_len) = start(&peers, T0, &mut init_buf);
    let mut response_buf = [0u8; 256];
    let accepted = peers
        .gateway
        .respond(
            &as_init(&init_buf[..init_len]),
            GATEWAY_INDEX,
            |_| known(&other_psk, None),
            &mut response_buf,
        )
        .expect("the PSK enters only with message 2");
    let result = initiator.finish(&as_response(&response_buf[..accepted.response_len]));
    assert!(
        matches!(result, Err(HandshakeError::BadResponse)),
        "{result:?}"
    );
}

#[test]
fn a_forged_response_does_not_spoil_the_pending_handshake() {
    let peers = peers();
    let mut init_buf = [0u8; 256];
    let (mut initiator, init_len) = start(&peers, T0, &mut init_buf);
    let mut response_buf = [0u8; 256];
    let accepted = peers
        .gateway
        .respond(
            &as_init(&init_buf[..init_len]),
            GATEWAY_INDEX,
            |_| known(&peers.psk, None),
            &mut response_buf,
        )
        .unwrap();
    let genuine = as_response(&response_buf[..accepted.response_len]);

    let garbage = [0x5a; 48];
    let mut forged = HandshakeResponse {
        noise: &garbage,
        ..genuine
    };
    assert!(matches!(
        initiator.finish(&forged),
        Err(HandshakeError::BadMac1)
    ));
    // mac1 is no secret (the client's public key): a forger can make it.
    forged.mac1 = MacKeys::for_receiver(&peers.client.public_key()).response_mac1(&forged);
    assert!(matches!(
        initiator.finish(&forged),
        Err(HandshakeError::BadResponse)
    ));
    let misaddressed = HandshakeResponse {
        receiver_index: CLIENT_INDEX + 1,
        ..genuine
    };
    assert!(matches!(
        initiator.finish(&misaddressed),
        Err(HandshakeError::IndexMismatch { .. })
    ));

    let client = initiator.finish(&genuine).unwrap();
    let mut packet = transport(&client.keys, GATEWAY_INDEX, 0, b"still fine");
    assert_eq!(
        open(&accepted.session.keys, &mut packet).unwrap(),
        b"still fine"
    );
}

#[test]
fn unknown_peer_is_refused_without_a_reply() {
    let peers = peers();
    let mut init_buf = [0u8; 256];
    let (_, init_len) = start(&peers, T0, &mut init_buf);
    let mut response_buf = [0u8; 256];
    let mut asked_for = None;
    let result = peers.gateway.respond(
        &as_init(&init_buf[..init_len]),
        GATEWAY_INDEX,
        |key| {
            asked_for = Some(*key);
            None
        },
        &mut response_buf,
    );
    assert!(
        matches!(result, Err(HandshakeError::UnknownPeer(key)) if key == peers.client.public_key())
    );
    assert_eq!(asked_for, Some(peers.client.public_key()));
    assert_eq!(response_buf, [0u8; 256], "nothing written to send");
}

#[test]
fn replayed_or_older_init_is_refused() {
    let peers = peers();
    let mut init_buf = [0u8; 256];
    let (_, init_len) = start(&peers, T0, &mut init_buf);
    let init = as_init(&init_buf[..init_len]);
    let mut response_buf = [0u8; 256];
    for last in [T0, T0 + 1] {
        let result = peers.gateway.respond(
            &init,
            GATEWAY_INDEX,
            |_| known(&peers.psk, Some(last)),
            &mut response_buf,
        );
        assert!(
            matches!(result, Err(HandshakeError::Replayed { timestamp_ns: T0, last_ns, .. }) if last_ns == last),
            "{result:?}"
        );
    }
    assert_eq!(response_buf, [0u8; 256], "nothing written to send");
    let newer = peers.gateway.respond(
        &init,
        GATEWAY_INDEX,
        |_| known(&peers.psk, Some(T0 - 1)),
        &mut response_buf,
    );
    assert!(newer.is_ok(), "{newer:?}");
}

#[test]
fn garbage_or_misdirected_inits_fail_to_authenticate() {
    let peers = peers();
    let garbage = [0x42u8; crate::wire::NOISE_INIT_LEN];
    let init = HandshakeInit {
        sender_index: 1,
        noise: &garbage,
        mac1: [0; crate::wire::MAC_LEN],
        mac2: [0; crate::wire::MAC_LEN],
    };
    let mut out = [0u8; 256];
    let result = peers
        .gateway
        .respond(&init, 2, |_| known(&peers.psk, None), &mut out);
    assert!(matches!(result, Err(HandshakeError::BadInit)), "{result:?}");

    // A genuine init for another gateway.
    let (other_gateway, _) = generate_keypair().unwrap();
    let other = Responder::new(other_gateway).unwrap();
    let mut init_buf = [0u8; 256];
    let (_, init_len) = start(&peers, T0, &mut init_buf);
    let result = other.respond(
        &as_init(&init_buf[..init_len]),
        2,
        |_| known(&peers.psk, None),
        &mut out,
    );
    assert!(matches!(result, Err(HandshakeError::BadInit)), "{result:?}");
}

#[test]
fn short_output_buffers_are_refused_before_any_work() {
    let peers = peers();
    let mut small = [0u8; HANDSHAKE_INIT_LEN - 1];
    let result = Initiator::start(
        &peers.client,
        &peers.gateway_public,
        &peers.psk,
        CLIENT_INDEX,
        T0,
        &mut small,
    );
    assert!(matches!(result, Err(HandshakeError::Wire(_))), "{result:?}");
}

#[test]
fn the_initiator_answers_a_cookie_reply_with_mac2_and_the_same_handshake() {
    let peers = peers();
    let mut jar = CookieJar::new(&peers.gateway_public).unwrap();
    let now = std::time::Instant::now();
    let from: std::net::SocketAddr = "198.18.0.2:40000".parse().unwrap();
    let mut init_buf = [0u8; 256];
    let (mut initiator, init_len) = start(&peers, T0, &mut init_buf);
    let first = as_init(&init_buf[..init_len]);
    assert!(jar.mac1_valid(&first));
    assert_eq!(first.mac2, [0; crate::wire::MAC_LEN], "no cookie yet");
    let Mac2::Missing(sent_cookie) = jar.check_mac2(now, from, &first) else {
        panic!("no mac2 yet");
    };

    let mut reply_buf = [0u8; crate::wire::COOKIE_REPLY_LEN];
    jar.write_reply(&sent_cookie, &first, &mut reply_buf)
        .unwrap();
    let Ok(crate::wire::Packet::CookieReply(reply)) = Packet::parse(&reply_buf) else {
        panic!("a cookie reply");
    };
    // A reply for another handshake (index or mac1) is refused.
    let misaddressed = crate::wire::CookieReply {
        receiver_index: CLIENT_INDEX + 1,
        ..reply
    };
    assert!(matches!(
        initiator.open_cookie_reply(&misaddressed),
        Err(HandshakeError::IndexMismatch { .. })
    ));
    let (other, _) = start(&peers, T0 + 1, &mut [0u8; 256]);
    assert!(matches!(
        other.open_cookie_reply(&reply),
        Err(HandshakeError::BadCookieReply)
    ));

    let cookie = initiator.open_cookie_reply(&reply).unwrap();
    let mut again_buf = [0u8; 256];
    let len = initiator.write_init(Some(&cookie), &mut again_buf).unwrap();
    let again = as_init(&again_buf[..len]);
    assert_eq!((again.noise, again.mac1), (first.noise, first.mac1));
    assert_eq!(cookie, sent_cookie);
    assert_eq!(jar.check_mac2(now, from, &again), Mac2::Valid);

    // The resent init completes the same pending handshake.
    let mut response_buf = [0u8; 256];
    let accepted = peers
        .gateway
        .respond(
            &again,
            GATEWAY_INDEX,
            |_| known(&peers.psk, None),
            &mut response_buf,
        )
        .unwrap();
    let response = as_response(&response_buf[..accepted.response_len]);
    assert!(initiator.finish(&response).is_ok());
}
