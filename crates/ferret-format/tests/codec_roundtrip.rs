//! Property tests of the block codec, for both block versions (2, the
//! columnar one written now, and 1, the row-wise one of older files): any
//! sequence of spans (any ids, times, statuses and tags, including
//! extremes) decodes to exactly what was encoded, with or without tags; a
//! truncated or damaged block never panics, and a truncated one never
//! decodes to wrong spans without an error.
//!
use ferret_format::codec::{
    BlockDecoder, BlockEncoder, BlockEncoderV1, BlockSpan, HeadFields, SpanHead,
};
use ferret_format::{Status, TagValue};
use proptest::prelude::*;

fn tag_value() -> impl Strategy<Value = TagValue> {
    prop_oneof![
        any::<String>().prop_map(TagValue::Str),
        any::<i64>().prop_map(TagValue::I64),
        any::<u64>().prop_map(TagValue::U64),
        // NaN != NaN: compare finite floats and infinities.
        any::<f64>()
            .prop_filter("not NaN", |f| !f.is_nan())
            .prop_map(TagValue::F64),
        any::<bool>().prop_map(TagValue::Bool),
        Just(TagValue::Null),
        any::<String>().prop_map(TagValue::Json),
    ]
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Ok),
        Just(Status::Error),
        any::<String>().prop_map(Status::Custom),
    ]
}

/// Spans with values drawn both from the whole range and from the small,
/// close values real blocks hold (deltas near 0).
fn span() -> impl Strategy<Value = BlockSpan> {
    let id = prop_oneof![any::<u64>(), 0u64..1000];
    let time = prop_oneof![
        any::<i64>(),
        1_700_000_000_000_000_000i64..1_700_000_000_001_000_000
    ];
    (
        (id.clone(), id.clone(), id, any::<u32>()),
        (time, any::<u64>(), any::<u64>(), 0u32..8),
        status(),
        prop::collection::vec((any::<String>(), tag_value()), 0..4),
    )
        .prop_map(
            |((id, parent, trace, path), (start_ns, dur_ns, child_ns, thread), status, tags)| {
                let error = status != Status::Ok;
                BlockSpan {
                    head: SpanHead {
                        id,
                        parent,
                        trace,
                        path,
                        start_ns,
                        dur_ns,
                        child_ns,
                        thread,
                        error,
                    },
                    status,
                    tags,
                }
            },
        )
}

/// The spans encoded as a block of `version` (1 or 2).
fn encode(spans: &[BlockSpan], version: u8) -> Vec<u8> {
    if version == 1 {
        let mut enc = BlockEncoderV1::new();
        for s in spans {
            enc.push_span(s);
        }
        assert_eq!(enc.len(), spans.len() as u64);
        return enc.finish();
    }
    let mut enc = BlockEncoder::new();
    for s in spans {
        enc.push_span(s);
    }
    assert_eq!(enc.len(), spans.len() as u64);
    enc.finish()
}

fn decode(data: &[u8], with_tags: bool) -> Result<Vec<BlockSpan>, String> {
    let mut dec = BlockDecoder::new(data, with_tags).map_err(|e| e.to_string())?;
    let mut out = vec![];
    let mut s = BlockSpan::default();
    while dec.next_into(&mut s).map_err(|e| e.to_string())? {
        out.push(s.clone());
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn blocks_round_trip(spans in prop::collection::vec(span(), 0..24), version in 1u8..=2) {
        let data = encode(&spans, version);
        prop_assert_eq!(decode(&data, true).unwrap(), spans.clone());
        // Without tags: the same spans, statuses kept, tags left out.
        let plain: Vec<BlockSpan> = spans
            .iter()
            .map(|s| BlockSpan { tags: vec![], ..s.clone() })
            .collect();
        prop_assert_eq!(decode(&data, false).unwrap(), plain);
        // Heads only agree with the full decode.
        let mut dec = BlockDecoder::new(&data[..], false).unwrap();
        for s in &spans {
            let h = dec.next_head().unwrap().unwrap();
            prop_assert_eq!(h, s.head);
            prop_assert_eq!(h.is_error(), s.status != Status::Ok);
        }
        prop_assert!(dec.next_head().unwrap().is_none());
        // In one loop, with every field or those of a summary.
        let mut dec = BlockDecoder::new(&data[..], false).unwrap();
        let mut heads = vec![];
        dec.for_each_head(|h| heads.push(*h)).unwrap();
        let want: Vec<SpanHead> = spans.iter().map(|s| s.head).collect();
        prop_assert_eq!(&heads, &want);
        let some = HeadFields::PATH | HeadFields::START | HeadFields::DURATION
            | HeadFields::CHILDREN | HeadFields::ERROR;
        let mut dec = BlockDecoder::new(&data[..], false).unwrap();
        heads.clear();
        dec.for_each_head_of(some, |h| heads.push(*h)).unwrap();
        prop_assert_eq!(heads.len(), want.len());
        for (h, w) in heads.iter().zip(&want) {
            prop_assert_eq!(
                (h.path, h.start_ns, h.dur_ns, h.child_ns, h.error),
                (w.path, w.start_ns, w.dur_ns, w.child_ns, w.error)
            );
        }
    }

    #[test]
    fn damaged_blocks_never_panic(
        spans in prop::collection::vec(span(), 1..10),
        version in 1u8..=2,
        hits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut data = encode(&spans, version);
        for (at, byte) in hits {
            let at = at.index(data.len());
            // The version byte stays: another one is refused outright.
            if at > 0 {
                data[at] = byte;
            }
        }
        // Whatever comes out: no panic, and no more spans than the block
        // has bytes (every span takes at least its flag byte).
        if let Ok(mut dec) = BlockDecoder::new(&data[..], true) {
            let mut s = BlockSpan::default();
            let mut n = 0u64;
            while let Ok(true) = dec.next_into(&mut s) {
                n += 1;
            }
            prop_assert!(n <= data.len() as u64);
        }
        for fields in [HeadFields::ALL, HeadFields::DURATION] {
            if let Ok(mut dec) = BlockDecoder::new(&data[..], false) {
                let mut n = 0u64;
                let _ = dec.for_each_head_of(fields, |_| n += 1);
                prop_assert!(n <= data.len() as u64);
                prop_assert_eq!(dec.remaining(), 0);
            }
        }
    }

    #[test]
    fn truncated_blocks_fail_cleanly(
        spans in prop::collection::vec(span(), 1..10),
        cut in any::<prop::sample::Index>(),
        version in 1u8..=2,
    ) {
        let data = encode(&spans, version);
        let cut = cut.index(data.len());
        // Never a panic; never more spans than were written; what does
        // decode before the error is a prefix of what was written.
        if let Ok(got) = decode(&data[..cut], true) {
            prop_assert!(got.len() < spans.len());
        }
        let mut dec = match BlockDecoder::new(&data[..cut], true) {
            Ok(d) => d,
            Err(_) => return Ok(()),
        };
        let mut s = BlockSpan::default();
        let mut i = 0;
        while let Ok(true) = dec.next_into(&mut s) {
            prop_assert_eq!(&s, &spans[i]);
            i += 1;
        }
    }
}
