//! Parse throughput of a typical GetProfiles answer (two profiles with video,
//! audio and analytics configurations, as mid-range cameras send).
//! `cargo bench --bench parse`; figures in BENCHMARKS.md.

use camfleet::onvif::envelope::{self, Reply};
use camfleet::onvif::media;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const GET_PROFILES: &[u8] = include_bytes!("data/get_profiles_two_profiles.xml");

fn parse_profiles(c: &mut Criterion) {
    let mut g = c.benchmark_group("get_profiles");
    g.throughput(Throughput::Bytes(GET_PROFILES.len() as u64));
    g.bench_function("envelope+profiles", |b| {
        b.iter(|| {
            let p = envelope::parse(black_box(GET_PROFILES)).expect("parses");
            let Reply::Body(body) = p.reply else {
                panic!("fault")
            };
            let profiles = media::parse_profiles(&body);
            assert_eq!(profiles.len(), 2);
            profiles
        })
    });
    g.finish();
}

criterion_group!(benches, parse_profiles);
criterion_main!(benches);
