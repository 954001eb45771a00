//! The link's rules, driven with a fake clock.

use super::*;

const HB: &[u8] = b"hb";

fn link(max_attempts: u32) -> (Link<u32>, Instant) {
    let timing = Timing {
        ack_timeout: Duration::from_secs(4),
        heartbeat: Duration::from_secs(30),
        max_attempts,
    };
    (Link::new(timing, HB.to_vec()), Instant::now())
}

fn sent(l: &mut Link<u32>, now: Instant) -> Option<Vec<u8>> {
    let out = l.poll_transmit(now).map(<[u8]>::to_vec);
    // One packet in flight: nothing more may follow until an answer or a timeout.
    assert_eq!(l.poll_transmit(now), None);
    out
}

fn events(l: &mut Link<u32>) -> Vec<LinkEvent<u32>> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

fn delivered(ev: &[LinkEvent<u32>]) -> Vec<u32> {
    ev.iter()
        .filter_map(|e| match e {
            LinkEvent::Delivered { token, .. } => Some(*token),
            _ => None,
        })
        .collect()
}

#[test]
fn acks_deliver_in_order_one_at_a_time() {
    let (mut l, t) = link(20);
    for i in 0..3u32 {
        l.push(vec![b'a' + i as u8], i);
    }
    assert_eq!(sent(&mut l, t), None, "nothing before a connection");
    l.connected(t);
    for i in 0..3u32 {
        assert_eq!(sent(&mut l, t), Some(vec![b'a' + i as u8]));
        l.handle_input(&[ACK], t);
    }
    let ev = events(&mut l);
    assert_eq!(delivered(&ev), vec![0, 1, 2]);
    assert_eq!(ev.first(), Some(&LinkEvent::Up));
    assert!(l.is_idle() && l.is_up());
}

#[test]
fn naks_resend_then_set_aside() {
    let (mut l, t) = link(3);
    l.push(b"bad".to_vec(), 7);
    l.push(b"next".to_vec(), 8);
    l.connected(t);
    for _ in 0..2 {
        assert_eq!(sent(&mut l, t).as_deref(), Some(&b"bad"[..]));
        l.handle_input(&[NAK], t);
    }
    assert_eq!(sent(&mut l, t).as_deref(), Some(&b"bad"[..]));
    l.handle_input(&[NAK], t);
    let ev = events(&mut l);
    assert!(ev.contains(&LinkEvent::SetAside {
        token: 7,
        packet: b"bad".to_vec(),
        naks: 3
    }));
    assert_eq!(sent(&mut l, t).as_deref(), Some(&b"next"[..]));
    // A NAK, then an ACK before the resend went out: that ACK answers no copy.
    l.handle_input(&[NAK, ACK], t);
    assert_eq!(sent(&mut l, t).as_deref(), Some(&b"next"[..]));
    let ev = events(&mut l);
    assert!(ev.contains(&LinkEvent::Nak { naks: 1 }));
    assert!(ev.contains(&LinkEvent::Stray), "{ev:?}");
}

#[test]
fn silence_resends_and_late_answers_are_not_taken_for_the_next_packet() {
    let (mut l, t) = link(20);
    l.push(b"one".to_vec(), 1);
    l.push(b"two".to_vec(), 2);
    l.connected(t);
    assert_eq!(sent(&mut l, t).as_deref(), Some(&b"one"[..]));
    let t1 = t + Duration::from_secs(4);
    assert_eq!(l.poll_timeout(), Some(t1));
    l.handle_timeout(t1);
    assert_eq!(sent(&mut l, t1).as_deref(), Some(&b"one"[..]), "sent again");
    // The answer to the first copy arrives late, then the one to the second.
    l.handle_input(&[ACK], t1);
    assert_eq!(sent(&mut l, t1), None, "waits for the other copy's answer");
    l.handle_input(&[NAK], t1);
    assert_eq!(delivered(&events(&mut l)), vec![1]);
    // The second packet is not settled by the answers to the first.
    assert_eq!(sent(&mut l, t1).as_deref(), Some(&b"two"[..]));
    l.handle_input(&[ACK], t1);
    assert_eq!(delivered(&events(&mut l)), vec![2]);
}

#[test]
fn acked_copy_with_an_unanswered_sibling_settles_at_the_deadline() {
    let (mut l, t) = link(20);
    l.push(b"one".to_vec(), 1);
    l.push(b"two".to_vec(), 2);
    l.connected(t);
    sent(&mut l, t);
    let t1 = t + Duration::from_secs(4);
    l.handle_timeout(t1);
    sent(&mut l, t1);
    l.handle_input(&[ACK], t1);
    assert!(delivered(&events(&mut l)).is_empty());
    let t2 = t1 + Duration::from_secs(4);
    assert_eq!(l.poll_timeout(), Some(t2));
    l.handle_timeout(t2);
    assert_eq!(delivered(&events(&mut l)), vec![1]);
    assert_eq!(sent(&mut l, t2).as_deref(), Some(&b"two"[..]));
}

#[test]
fn long_silence_hangs_up_and_a_new_connection_resends() {
    let (mut l, t) = link(20);
    l.push(b"one".to_vec(), 1);
    l.connected(t);
    sent(&mut l, t);
    l.handle_input(&[ACK], t);
    l.push(b"two".to_vec(), 2);
    let mut now = t;
    let mut ev = Vec::new();
    for _ in 0..SILENCE_LIMIT {
        assert_eq!(sent(&mut l, now).as_deref(), Some(&b"two"[..]));
        now += Duration::from_secs(4);
        l.handle_timeout(now);
        ev.extend(events(&mut l));
    }
    assert!(ev.contains(&LinkEvent::Down));
    assert_eq!(ev.last(), Some(&LinkEvent::Hangup));
    assert!(!l.is_up());
    l.disconnected();
    // An answer on the dead connection's behalf means nothing now.
    assert_eq!(sent(&mut l, now), None);
    l.connected(now);
    assert_eq!(sent(&mut l, now).as_deref(), Some(&b"two"[..]));
    l.handle_input(&[ACK], now);
    assert_eq!(delivered(&events(&mut l)), vec![2]);
}

#[test]
fn disconnect_mid_packet_resends_it_first() {
    let (mut l, t) = link(20);
    l.push(b"one".to_vec(), 1);
    l.push(b"two".to_vec(), 2);
    l.connected(t);
    sent(&mut l, t);
    l.disconnected();
    l.connected(t);
    assert_eq!(sent(&mut l, t).as_deref(), Some(&b"one"[..]));
    l.handle_input(&[ACK], t);
    assert_eq!(sent(&mut l, t).as_deref(), Some(&b"two"[..]));
}

#[test]
fn heartbeats_only_when_idle() {
    let (mut l, t) = link(20);
    l.connected(t);
    // A new connection with nothing to send proves itself with a heartbeat.
    assert_eq!(sent(&mut l, t).as_deref(), Some(HB));
    l.handle_input(&[ACK], t);
    assert_eq!(
        events(&mut l),
        vec![LinkEvent::Up, LinkEvent::HeartbeatAnswered]
    );
    // Busy: packets, no heartbeat, however long it lasts.
    let mut now = t;
    for i in 0..100u32 {
        now += Duration::from_secs(1);
        l.push(b"p".to_vec(), i);
        assert_eq!(sent(&mut l, now).as_deref(), Some(&b"p"[..]));
        l.handle_input(&[ACK], now);
    }
    // Idle: the next heartbeat falls `heartbeat` after the last packet.
    let due = now + Duration::from_secs(30);
    assert_eq!(l.poll_timeout(), Some(due));
    assert_eq!(sent(&mut l, due - Duration::from_millis(1)), None);
    assert_eq!(sent(&mut l, due).as_deref(), Some(HB));
    // A NAK to a heartbeat still shows the automation is there.
    l.handle_input(&[NAK], due);
    assert!(events(&mut l).contains(&LinkEvent::HeartbeatAnswered));
    assert!(l.is_up());
}

#[test]
fn stray_answers_and_junk_are_ignored() {
    let (mut l, t) = link(20);
    l.connected(t);
    sent(&mut l, t);
    l.handle_input(b"\r\nxyz", t);
    l.handle_input(&[ACK, ACK], t);
    let ev = events(&mut l);
    assert!(ev.contains(&LinkEvent::Stray));
    l.push(b"p".to_vec(), 1);
    assert_eq!(sent(&mut l, t).as_deref(), Some(&b"p"[..]));
}
