from lockgate.server.sse import SSEDecoder, encode_data, encode_event


def test_events_split_across_reads_and_crlf() -> None:
    decoder = SSEDecoder()
    stream = b'data: {"a":1}\r\n\r\nevent: ping\r\ndata: {}\r\n\r\n: comment\n\ndata: [DONE]\n\n'
    events = []
    for i in range(0, len(stream), 5):
        events += decoder.feed(stream[i : i + 5])
    assert [(e.event, e.data) for e in events] == [(None, b'{"a":1}'), ("ping", b"{}"), (None, b"[DONE]")]
    assert decoder.pending == b""


def test_multiline_data_and_raw_bytes_kept() -> None:
    events = SSEDecoder().feed(b"data: line1\ndata: line2\n\n")
    assert events[0].data == b"line1\nline2"
    assert events[0].raw == b"data: line1\ndata: line2\n\n"


def test_incomplete_event_stays_pending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"partial"') == []
    assert decoder.pending == b'data: {"partial"'


def test_encoders() -> None:
    assert encode_data({"x": 1}) == b'data: {"x":1}\n\n'
    assert encode_event("message_stop", {"type": "message_stop"}) == (
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
