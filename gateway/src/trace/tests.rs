use http::{HeaderMap, HeaderValue};

use super::*;

/// The specification's own example (§3.2.2.6).
const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(*name, HeaderValue::from_static(value));
    }
    h
}

#[test]
fn the_specifications_example_parses_and_formats_back() {
    let p = Traceparent::parse(EXAMPLE).unwrap();
    assert_eq!(p.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(p.parent_id.to_string(), "00f067aa0ba902b7");
    assert!(p.sampled);
    assert_eq!(p.to_header(), EXAMPLE);
    let unsampled = EXAMPLE.replace("-01", "-00");
    assert!(!Traceparent::parse(&unsampled).unwrap().sampled);
}

#[test]
fn every_malformed_traceparent_names_what_broke() {
    use TraceparentError as E;
    let cases = [
        ("", E::Length(0)),
        (&EXAMPLE[..54], E::Length(54)),
        (&*format!("{EXAMPLE}-x"), E::Length(57)),
        (
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            E::Version,
        ),
        (
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            E::Version,
        ),
        (
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            E::Separator,
        ),
        (
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            E::TraceId,
        ),
        (
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            E::TraceId,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            E::ParentId,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902zz-01",
            E::ParentId,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            E::Flags,
        ),
    ];
    for (value, error) in cases {
        assert_eq!(Traceparent::parse(value), Err(error), "{value:?}");
    }
}

#[test]
fn a_later_version_is_read_by_its_first_fields_and_sent_as_00() {
    let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-what-comes-next";
    let p = Traceparent::parse(later).unwrap();
    assert!(p.sampled);
    assert_eq!(p.to_header(), EXAMPLE, "version 00, unknown flag bits zero");
    let glued = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x";
    assert_eq!(Traceparent::parse(glued), Err(TraceparentError::Length(56)));
}

#[test]
fn a_valid_traceparent_is_continued_with_this_hops_span_as_the_parent() {
    let h = headers(&[
        ("traceparent", EXAMPLE),
        ("tracestate", "congo=t61rcWkgMzE"),
    ]);
    let hop = HopTrace::continue_or_start(&h, Sampler::new(0.0));
    let caller = Traceparent::parse(EXAMPLE).unwrap();
    assert_eq!(hop.trace_id, caller.trace_id);
    assert_eq!(hop.parent_id, Some(caller.parent_id));
    assert_ne!(hop.span_id, caller.parent_id);
    assert!(hop.sampled, "the caller's flag wins over the ratio");
    let mut out = h.clone();
    hop.write(&mut out);
    let sent = Traceparent::parse(out["traceparent"].to_str().unwrap()).unwrap();
    assert_eq!(sent.trace_id, caller.trace_id);
    assert_eq!(sent.parent_id, hop.span_id);
    assert!(sent.sampled);
    assert_eq!(out["tracestate"], "congo=t61rcWkgMzE");
}

#[test]
fn an_absent_or_invalid_traceparent_starts_a_trace_and_drops_tracestate() {
    for h in [
        headers(&[]),
        headers(&[("traceparent", "00-zz"), ("tracestate", "a=b")]),
        headers(&[("traceparent", EXAMPLE), ("traceparent", EXAMPLE)]),
    ] {
        let hop = HopTrace::continue_or_start(&h, Sampler::new(1.0));
        assert_eq!(hop.parent_id, None, "{h:?}");
        assert!(hop.sampled, "ratio 1 samples every started trace");
        assert_ne!(hop.trace_id, Traceparent::parse(EXAMPLE).unwrap().trace_id);
        let mut out = h.clone();
        hop.write(&mut out);
        assert_eq!(out.get_all("traceparent").iter().count(), 1, "{out:?}");
        let sent = Traceparent::parse(out["traceparent"].to_str().unwrap()).unwrap();
        assert_eq!((sent.trace_id, sent.parent_id), (hop.trace_id, hop.span_id));
        assert!(out.get("tracestate").is_none(), "{out:?}");
    }
    let unsampled = HopTrace::continue_or_start(&headers(&[]), Sampler::new(0.0));
    assert!(!unsampled.sampled);
}

#[test]
fn tracestate_headers_join_and_malformed_ones_are_dropped() {
    let h = headers(&[("tracestate", "a=1, b@t=2"), ("tracestate", "c=3")]);
    assert_eq!(tracestate(&h).as_deref(), Some("a=1,b@t=2,c=3"));
    for bad in ["noequals", "A=1", "a=x,y", "a=", &*"k=v,".repeat(40)] {
        let mut h = HeaderMap::new();
        h.insert("tracestate", HeaderValue::from_str(bad).unwrap());
        assert_eq!(tracestate(&h), None, "{bad:?}");
    }
}

#[test]
fn the_ratio_samples_about_its_share_of_random_trace_ids() {
    let sampler = Sampler::new(0.25);
    let sampled = (0..4000)
        .filter(|_| sampler.samples(&new_trace_id()))
        .count();
    assert!((800..1200).contains(&sampled), "{sampled} of 4000 at 0.25");
    assert!(!Sampler::new(0.0).samples(&TraceId([0xff; 16])));
    assert!(Sampler::new(1.0).samples(&TraceId([0xff; 16])));
}
