//! Fragmented MP4 for live view: an initialisation segment (`ftyp`, a
//! `moov` with empty sample tables and `mvex`) and movie fragments
//! (`moof` + `mdat`). The boxes and the track header are the segment
//! writer's own (`super`).

use super::{Kind, MATRIX, MOVIE_TIMESCALE, Timing, Track, bx, full, trak, u32s};

/// The initialisation segment of a fragmented MP4 with one video track
/// (ID 1): `ftyp`, and a `moov` whose sample tables are empty and whose
/// `mvex` announces that the samples come in movie fragments
/// ([`fragment`]). Live view sends it first, and again when the stream's
/// parameters change.
pub fn fragmented_init(
    sample_entry: &[u8],
    (width, height): (u32, u32),
    timescale: u32,
) -> Vec<u8> {
    let ftyp = bx(
        b"ftyp",
        &[
            b"iso5".as_slice(),
            &0x200u32.to_be_bytes(),
            b"iso5iso6avc1mp41",
        ]
        .concat(),
    );
    let track = Track {
        kind: Kind::Video { width, height },
        sample_entry: sample_entry.to_vec(),
        timescale,
        nominal: timescale / 25,
        samples: Vec::new(),
    };
    let timing = Timing {
        durations: Vec::new(),
        offsets: Vec::new(),
        lead: 0,
    };
    let mut mvhd = u32s(&[0, 0, MOVIE_TIMESCALE, 0, 0x0001_0000]);
    mvhd.extend_from_slice(&0x0100u16.to_be_bytes());
    mvhd.extend_from_slice(&[0; 10]);
    mvhd.extend(u32s(&MATRIX));
    mvhd.extend_from_slice(&[0; 24]);
    mvhd.extend(u32s(&[2]));
    // trex: track 1, sample description 1, no defaults (every fragment
    // states its samples' durations, sizes and flags).
    let trex = full(b"trex", 0, 0, &u32s(&[1, 1, 0, 0, 0]));
    let moov = [
        full(b"mvhd", 0, 0, &mvhd),
        trak(&track, &timing, 1, 0, 0, false),
        bx(b"mvex", &trex),
    ]
    .concat();
    [ftyp, bx(b"moov", &moov)].concat()
}

/// One video sample of a movie fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragSample {
    /// In the track's timescale.
    pub duration: u32,
    pub size: u32,
    pub sync: bool,
    /// Presentation minus decode time (signed: `trun` version 1).
    pub composition_offset: i32,
}

/// A movie fragment (`moof` + `mdat`) of track 1: `sequence` counts up
/// from 1, `decode_time` is the first sample's decode time in the track's
/// timescale, `data` the samples' bytes one after another.
pub fn fragment(sequence: u32, decode_time: u64, samples: &[FragSample], data: &[u8]) -> Vec<u8> {
    let mfhd = full(b"mfhd", 0, 0, &u32s(&[sequence]));
    // tfhd: track 1, the base offset is the moof (default-base-is-moof).
    let tfhd = full(b"tfhd", 0, 0x02_0000, &u32s(&[1]));
    let tfdt = full(b"tfdt", 1, 0, &decode_time.to_be_bytes());
    // trun: data offset, and per sample its duration, size, flags and
    // composition offset.
    let flags = 0x0001 | 0x0100 | 0x0200 | 0x0400 | 0x0800;
    let mut trun = u32s(&[samples.len() as u32, 0]);
    for s in samples {
        // sample_depends_on 2 (an I picture) for sync samples; otherwise
        // depends on others and is not a sync sample.
        let sample_flags: u32 = if s.sync { 0x0200_0000 } else { 0x0101_0000 };
        trun.extend(u32s(&[
            s.duration,
            s.size,
            sample_flags,
            s.composition_offset as u32,
        ]));
    }
    let traf_len = |trun_len: usize| 8 + tfhd.len() + tfdt.len() + trun_len;
    let trun_len = 12 + trun.len();
    let moof_len = 8 + mfhd.len() + traf_len(trun_len);
    // The data offset counts from the moof's first byte to the first
    // sample, past the mdat header.
    trun[4..8].copy_from_slice(&((moof_len + 8) as u32).to_be_bytes());
    let traf = bx(
        b"traf",
        &[tfhd, tfdt, full(b"trun", 1, flags, &trun)].concat(),
    );
    let moof = bx(b"moof", &[mfhd, traf].concat());
    debug_assert_eq!(moof.len(), moof_len);
    let mut out = moof;
    out.reserve(data.len() + 8);
    out.extend_from_slice(&((data.len() + 8) as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    out.extend_from_slice(data);
    out
}
