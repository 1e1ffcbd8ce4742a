use super::*;
use crate::test_support::*;

/// `messages` gRPC messages of the given sizes, framed.
fn framed(sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    for &n in sizes {
        out.push(0);
        out.extend_from_slice(&(n as u32).to_be_bytes());
        out.extend(std::iter::repeat_n(b'x', n));
    }
    out
}

/// Feeds `data` cut into chunks of `chunk` bytes, as the host hands them; counts the reads.
fn feed(frames: &mut Frames, data: &[u8], chunk: usize) -> usize {
    let mut reads = 0;
    for piece in data.chunks(chunk.max(1)) {
        frames.feed(piece.len(), |at, len| {
            reads += 1;
            piece
                .get(at..(at + len).min(piece.len()))
                .unwrap_or_default()
                .to_vec()
        });
    }
    reads
}

logic_test! {
fn messages_are_counted_however_the_data_is_cut() {
    let data = framed(&[3, 0, 70_000, 1, 16]);
    for chunk in [1, 2, 4, 5, 6, 7, 13, 16_384, 100_000] {
        let mut frames = Frames::default();
        feed(&mut frames, &data, chunk);
        assert_eq!(frames.messages, 5, "chunk {chunk}");
        assert_eq!(frames.status, None);
    }
    // Only prefixes are read: one read per message when the data comes whole.
    let mut frames = Frames::default();
    assert_eq!(feed(&mut frames, &data, data.len()), 5);
    let mut none = Frames::default();
    feed(&mut none, &[], 10);
    assert_eq!(none.messages, 0);
}
}

logic_test! {
fn a_grpc_web_trailer_frame_is_the_status_not_a_message() {
    let mut data = framed(&[4]);
    let trailer = b"grpc-status: 5\r\ngrpc-message: nope\r\n";
    data.push(0x80);
    data.extend_from_slice(&(trailer.len() as u32).to_be_bytes());
    data.extend_from_slice(trailer);
    let mut frames = Frames::default();
    feed(&mut frames, &data, data.len());
    assert_eq!((frames.messages, frames.status), (1, Some(5)));
    let stream = Stream { sent: frames, ..Stream::default() };
    assert_eq!(stream.status().as_deref(), Some(&b"5"[..]));
    // Trailers read as they passed win over the frame.
    let stream = Stream { status: Some(b"0".to_vec()), ..stream };
    assert_eq!(stream.status().as_deref(), Some(&b"0"[..]));
}
}

logic_test! {
fn the_table_is_bounded_and_forgets_what_ended() {
    let mut streams = Streams::default();
    for context in 0..MAX_STREAMS as u32 {
        assert!(streams.start(context, 1));
    }
    assert!(!streams.start(u32::MAX, 1));
    assert_eq!(streams.finish(7).map(|s| s.rpc), Some(1));
    assert!(streams.finish(7).is_none());
    assert!(streams.start(u32::MAX, 2));
}
}
