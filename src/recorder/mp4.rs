//! A plain (non-fragmented) MP4 writer for a video track and an optional
//! audio track, laid out for playing at once: `ftyp`, room kept for the
//! `moov`, then `mdat` filled as frames arrive; when the segment is
//! finished the `moov` (sample tables, `ctts` and an edit list when frames
//! are reordered) goes into the room and a `free` box pads the rest. Frames
//! are written as they come (length-prefixed NAL units, as retina hands
//! them over); nothing is decoded.
//!
//! Until `finish` the file has no `moov` and is not playable: a crash
//! loses at most the segment being written, which start-up reconciliation
//! discards.

use std::io::{Read, Seek, SeekFrom, Write};

mod fragment;
pub use fragment::{FragSample, fragment, fragmented_init};

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 8);
    v.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    v.extend_from_slice(kind);
    v.extend_from_slice(body);
    v
}

fn full(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(body.len() + 4);
    b.push(version);
    b.extend_from_slice(&flags.to_be_bytes()[1..]);
    b.extend_from_slice(body);
    bx(kind, &b)
}

fn u32s(vals: &[u32]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_be_bytes()).collect()
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

#[derive(Debug, Clone, Copy)]
struct Sample {
    offset: u64,
    size: u32,
    /// Presentation time as the camera stamped it (track timescale).
    pts: i64,
    sync: bool,
}

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Video { width: u32, height: u32 },
    Audio,
}

struct Track {
    kind: Kind,
    sample_entry: Vec<u8>,
    timescale: u32,
    /// Duration given to the last sample (and to one after a jump).
    nominal: u32,
    samples: Vec<Sample>,
}

/// A track's decode timing, derived from the presentation times when the
/// segment is finished.
struct Timing {
    /// Per sample, in decode order (`stts`).
    durations: Vec<u32>,
    /// Per sample, presentation minus decode time (`ctts`); all zero when
    /// nothing is reordered.
    offsets: Vec<u32>,
    /// The first sample's offset: an edit list starts presentation there.
    lead: u32,
}

impl Track {
    /// Frames arrive in decode order stamped with presentation times; with
    /// B-frames those go back and forth. Within a run of plausible
    /// timestamps the decode times are the presentation times in sorted
    /// order, moved earlier by the largest reordering, so no frame is
    /// decoded after it is shown. A jump (a camera clock reset, a gap over
    /// ten seconds) starts a new run and gets the nominal duration, as a
    /// broken timestamp always has.
    fn timing(&self) -> Timing {
        let n = self.samples.len();
        let ts = i64::from(self.timescale.max(1));
        let mut dts = vec![0i64; n];
        let mut run_start = 0;
        let mut lead = 0u32;
        let mut runs = Vec::new();
        for i in 1..=n {
            let split = i == n || {
                let (a, b) = (self.samples[i - 1].pts, self.samples[i].pts);
                b < a - ts || b > a + 10 * ts
            };
            if split {
                runs.push((run_start, i));
                run_start = i;
            }
        }
        for (k, &(lo, hi)) in runs.iter().enumerate() {
            let mut sorted: Vec<i64> = self.samples[lo..hi].iter().map(|s| s.pts).collect();
            sorted.sort_unstable();
            let shift = (lo..hi)
                .map(|i| sorted[i - lo] - self.samples[i].pts)
                .max()
                .unwrap_or(0)
                .max(0);
            for i in lo..hi {
                dts[i] = sorted[i - lo] - shift;
            }
            if k == 0 && lo < hi {
                lead = u32::try_from(self.samples[lo].pts - dts[lo]).unwrap_or(0);
            }
        }
        let mut durations = Vec::with_capacity(n);
        for i in 0..n {
            let d = if i + 1 < n { dts[i + 1] - dts[i] } else { 0 };
            durations.push(if d > 0 && d < 10 * ts {
                d as u32
            } else {
                self.nominal
            });
        }
        let offsets = (0..n)
            .map(|i| u32::try_from(self.samples[i].pts - dts[i]).unwrap_or(0))
            .collect();
        Timing {
            durations,
            offsets,
            lead,
        }
    }
}

/// Movie timescale (mvhd, tkhd durations): milliseconds.
const MOVIE_TIMESCALE: u32 = 1000;

/// Room kept for `moov` between `ftyp` and `mdat` by [`Mp4Writer::new`]:
/// enough for a minute at 30 fps with AAC audio at 48 kHz, the worst
/// case of every table (about 24 bytes per video sample, 16 per audio).
pub const DEFAULT_MOOV_RESERVE: u64 = 128 * 1024;

/// The room a segment of this many seconds needs for its `moov`.
pub fn moov_reserve_for(secs: u64) -> u64 {
    (secs.saturating_mul(2048) + 8192).clamp(16 * 1024, 4 * 1024 * 1024)
}

/// One segment being written: a video track and, when the camera sends
/// audio, an audio track.
pub struct Mp4Writer<W: Read + Write + Seek> {
    out: W,
    tracks: Vec<Track>,
    /// Where the reserved room (a `free` box) starts: right after `ftyp`.
    reserve_at: u64,
    /// Its size, header included (0: none).
    reserve: u64,
    mdat_start: u64,
    pos: u64,
}

impl<W: Read + Write + Seek> Mp4Writer<W> {
    /// `sample_entry` is a complete `avc1`/`hvc1` box (retina builds it).
    /// Keeps [`DEFAULT_MOOV_RESERVE`] bytes for the `moov`.
    pub fn new(
        out: W,
        sample_entry: Vec<u8>,
        dims: (u32, u32),
        timescale: u32,
    ) -> std::io::Result<Self> {
        Self::with_reserve(out, sample_entry, dims, timescale, DEFAULT_MOOV_RESERVE)
    }

    /// As [`new`](Self::new), keeping `reserve` bytes for the `moov` (0:
    /// none; `finish` then moves the media data once to make room).
    pub fn with_reserve(
        mut out: W,
        sample_entry: Vec<u8>,
        (width, height): (u32, u32),
        timescale: u32,
        reserve: u64,
    ) -> std::io::Result<Self> {
        let ftyp = bx(
            b"ftyp",
            &[
                b"isom".as_slice(),
                &0x200u32.to_be_bytes(),
                b"isomiso2avc1mp41",
            ]
            .concat(),
        );
        out.write_all(&ftyp)?;
        let reserve_at = ftyp.len() as u64;
        let reserve = if reserve == 0 {
            0
        } else {
            reserve.clamp(8, u64::from(u32::MAX))
        };
        if reserve > 0 {
            out.write_all(&(reserve as u32).to_be_bytes())?;
            out.write_all(b"free")?;
            write_zeros(&mut out, reserve - 8)?;
        }
        let mdat_start = reserve_at + reserve;
        // mdat header; its size is patched in `finish`.
        out.write_all(&[0, 0, 0, 8, b'm', b'd', b'a', b't'])?;
        Ok(Self {
            out,
            tracks: vec![Track {
                kind: Kind::Video { width, height },
                sample_entry,
                timescale,
                nominal: timescale / 25,
                samples: Vec::new(),
            }],
            reserve_at,
            reserve,
            mdat_start,
            pos: mdat_start + 8,
        })
    }

    /// Add an audio track (`mp4a` sample entry); returns its index for
    /// [`push_to`](Self::push_to). `frame_length` is the samples per frame
    /// (1024 for AAC).
    pub fn add_audio(&mut self, sample_entry: Vec<u8>, timescale: u32, frame_length: u32) -> usize {
        self.tracks.push(Track {
            kind: Kind::Audio,
            sample_entry,
            timescale,
            nominal: frame_length.max(1),
            samples: Vec::new(),
        });
        self.tracks.len() - 1
    }

    /// Video samples so far.
    pub fn samples(&self) -> usize {
        self.tracks[0].samples.len()
    }

    /// Append one video frame, in decode order, with its presentation
    /// timestamp (in the video timescale).
    pub fn push(&mut self, pts: i64, data: &[u8], sync: bool) -> std::io::Result<()> {
        self.push_to(0, pts, data, sync)
    }

    /// Append one sample to a track.
    pub fn push_to(
        &mut self,
        track: usize,
        pts: i64,
        data: &[u8],
        sync: bool,
    ) -> std::io::Result<()> {
        let Some(t) = self.tracks.get_mut(track) else {
            return Err(std::io::Error::other(format!("no track {track}")));
        };
        self.out.write_all(data)?;
        t.samples.push(Sample {
            offset: self.pos,
            size: data.len() as u32,
            pts,
            sync,
        });
        self.pos += data.len() as u64;
        Ok(())
    }

    /// Video duration so far, in the video timescale.
    pub fn duration(&self) -> u64 {
        sum(&self.tracks[0].timing().durations)
    }

    /// Write `moov` before `mdat` (so a player starts after the first few
    /// hundred KiB), patch the `mdat` size, flush; returns the writer.
    /// When the reserved room is too small the media data is moved up once
    /// to make room (exports; a segment whose reserve was undersized).
    pub fn finish(mut self) -> std::io::Result<W> {
        let mdat_size = self.pos - self.mdat_start;
        let timings: Vec<Timing> = self.tracks.iter().map(Track::timing).collect();
        let fits = |len: u64, room: u64| len == room || len + 8 <= room;
        let mut shift = 0u64;
        let mut moov = self.moov(&timings, 0);
        if !fits(moov.len() as u64, self.reserve) {
            shift = moov.len() as u64 + 8 - self.reserve;
            moov = self.moov(&timings, shift);
            if !fits(moov.len() as u64, self.reserve + shift) {
                // The offsets outgrew 32 bits (stco became co64).
                shift = moov.len() as u64 + 8 - self.reserve;
                moov = self.moov(&timings, shift);
            }
            move_up(&mut self.out, self.mdat_start, self.pos, shift)?;
        }
        let room = self.reserve + shift;
        self.out.seek(SeekFrom::Start(self.reserve_at))?;
        self.out.write_all(&moov)?;
        let rest = room - moov.len() as u64;
        if rest > 0 {
            self.out.write_all(&(rest as u32).to_be_bytes())?;
            self.out.write_all(b"free")?;
        }
        self.out.seek(SeekFrom::Start(self.mdat_start + shift))?;
        self.out.write_all(&(mdat_size as u32).to_be_bytes())?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn moov(&self, timings: &[Timing], shift: u64) -> Vec<u8> {
        let movie_ms = |t: &Track, tm: &Timing| {
            sum(&tm.durations) * u64::from(MOVIE_TIMESCALE) / u64::from(t.timescale.max(1))
        };
        // Audio only counts when it has samples.
        let tracks: Vec<(&Track, &Timing)> = self
            .tracks
            .iter()
            .zip(timings)
            .filter(|(t, _)| matches!(t.kind, Kind::Video { .. }) || !t.samples.is_empty())
            .collect();
        let dur = tracks
            .iter()
            .map(|(t, tm)| movie_ms(t, tm))
            .max()
            .unwrap_or(0) as u32;
        let mut mvhd = u32s(&[0, 0, MOVIE_TIMESCALE, dur, 0x0001_0000]);
        mvhd.extend_from_slice(&0x0100u16.to_be_bytes());
        mvhd.extend_from_slice(&[0; 10]);
        mvhd.extend(u32s(&MATRIX));
        mvhd.extend_from_slice(&[0; 24]);
        mvhd.extend(u32s(&[tracks.len() as u32 + 1]));
        let mut moov = full(b"mvhd", 0, 0, &mvhd);
        let big = self.pos + shift > u64::from(u32::MAX);
        for (i, (t, tm)) in tracks.iter().enumerate() {
            moov.extend(trak(
                t,
                tm,
                i as u32 + 1,
                movie_ms(t, tm) as u32,
                shift,
                big,
            ));
        }
        bx(b"moov", &moov)
    }
}

/// One track's `trak` box; `big` when sample offsets need 64 bits.
fn trak(t: &Track, tm: &Timing, id: u32, movie_dur: u32, shift: u64, big: bool) -> Vec<u8> {
    let (w, h, volume, handler, name): (u32, u32, u16, &[u8; 4], &[u8]) = match t.kind {
        Kind::Video { width, height } => (width, height, 0, b"vide", b"camfleet video\0"),
        Kind::Audio => (0, 0, 0x0100, b"soun", b"camfleet audio\0"),
    };
    let mut tkhd = u32s(&[0, 0, id, 0, movie_dur, 0, 0]);
    tkhd.extend_from_slice(&[0, 0, 0, 0]); // layer, alternate group
    tkhd.extend_from_slice(&volume.to_be_bytes());
    tkhd.extend_from_slice(&[0, 0]); // reserved
    tkhd.extend(u32s(&MATRIX));
    tkhd.extend(u32s(&[w << 16, h << 16]));
    let mut mdhd = u32s(&[0, 0, t.timescale, sum(&tm.durations) as u32]);
    mdhd.extend_from_slice(&0x55c4u16.to_be_bytes()); // "und"
    mdhd.extend_from_slice(&[0, 0]);
    let mut hdlr = u32s(&[0]);
    hdlr.extend_from_slice(handler);
    hdlr.extend_from_slice(&[0; 12]);
    hdlr.extend_from_slice(name);
    // Sample tables.
    let stts_b = run_lengths(&tm.durations);
    let n = t.samples.len() as u32;
    // One chunk per sample: simple and exact.
    let stsc = u32s(&[1, 1, 1, 1]);
    let mut stsz = u32s(&[0, n]);
    stsz.extend(t.samples.iter().flat_map(|s| s.size.to_be_bytes()));
    let (co_kind, co) = if big {
        let mut v = u32s(&[n]);
        v.extend(
            t.samples
                .iter()
                .flat_map(|s| (s.offset + shift).to_be_bytes()),
        );
        (b"co64", v)
    } else {
        let mut v = u32s(&[n]);
        v.extend(
            t.samples
                .iter()
                .flat_map(|s| ((s.offset + shift) as u32).to_be_bytes()),
        );
        (b"stco", v)
    };
    let mut stsd = u32s(&[1]);
    stsd.extend_from_slice(&t.sample_entry);
    let mut stbl = full(b"stsd", 0, 0, &stsd);
    stbl.extend(full(b"stts", 0, 0, &stts_b));
    if tm.offsets.iter().any(|&o| o != 0) {
        stbl.extend(full(b"ctts", 0, 0, &run_lengths(&tm.offsets)));
    }
    if matches!(t.kind, Kind::Video { .. }) {
        let sync: Vec<u32> = t
            .samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.sync)
            .map(|(i, _)| i as u32 + 1)
            .collect();
        let mut stss = u32s(&[sync.len() as u32]);
        stss.extend(u32s(&sync));
        stbl.extend(full(b"stss", 0, 0, &stss));
    }
    stbl.extend(full(b"stsc", 0, 0, &stsc));
    stbl.extend(full(b"stsz", 0, 0, &stsz));
    stbl.extend(full(co_kind, 0, 0, &co));
    let dinf = bx(
        b"dinf",
        &full(
            b"dref",
            0,
            0,
            &[u32s(&[1]), full(b"url ", 0, 1, &[])].concat(),
        ),
    );
    let media_header = match t.kind {
        Kind::Video { .. } => full(b"vmhd", 0, 1, &[0; 8]),
        Kind::Audio => full(b"smhd", 0, 0, &[0; 4]),
    };
    let minf = bx(b"minf", &[media_header, dinf, bx(b"stbl", &stbl)].concat());
    let mdia = bx(
        b"mdia",
        &[full(b"mdhd", 0, 0, &mdhd), full(b"hdlr", 0, 0, &hdlr), minf].concat(),
    );
    // Reordered frames: presentation starts at the first frame's
    // composition time, not at its decode time.
    let edts = if tm.lead > 0 {
        let elst = u32s(&[1, movie_dur, tm.lead, 0x0001_0000]);
        bx(b"edts", &full(b"elst", 0, 0, &elst))
    } else {
        Vec::new()
    };
    bx(b"trak", &[full(b"tkhd", 0, 3, &tkhd), edts, mdia].concat())
}

fn sum(v: &[u32]) -> u64 {
    v.iter().map(|&d| u64::from(d)).sum()
}

/// `count, (run, value)...` as `stts` and `ctts` have them.
fn run_lengths(values: &[u32]) -> Vec<u8> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &v in values {
        match runs.last_mut() {
            Some((n, d)) if *d == v => *n += 1,
            _ => runs.push((1, v)),
        }
    }
    let mut b = u32s(&[runs.len() as u32]);
    for (n, d) in &runs {
        b.extend(u32s(&[*n, *d]));
    }
    b
}

fn write_zeros(out: &mut impl Write, mut n: u64) -> std::io::Result<()> {
    let zeros = [0u8; 8192];
    while n > 0 {
        let k = n.min(zeros.len() as u64) as usize;
        out.write_all(&zeros[..k])?;
        n -= k as u64;
    }
    Ok(())
}

/// Move the bytes `[from, end)` up by `by`, last piece first (the ranges
/// overlap), in 1 MiB pieces.
fn move_up<W: Read + Write + Seek>(
    out: &mut W,
    from: u64,
    end: u64,
    by: u64,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut hi = end;
    while hi > from {
        let lo = hi.saturating_sub(buf.len() as u64).max(from);
        let piece = &mut buf[..(hi - lo) as usize];
        out.seek(SeekFrom::Start(lo))?;
        out.read_exact(piece)?;
        out.seek(SeekFrom::Start(lo + by))?;
        out.write_all(piece)?;
        hi = lo;
    }
    Ok(())
}

/// One track of a segment as camfleet wrote it.
#[derive(Debug, Clone)]
pub struct ReadTrack {
    pub video: bool,
    pub timescale: u32,
    pub sample_entry: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// (offset in the file, size, duration, sync)
    pub samples: Vec<(u64, u32, u32, bool)>,
    /// Composition offsets (`ctts`), one per sample; empty when none.
    pub cts: Vec<u32>,
}

fn children(b: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i + 8 <= b.len() {
        let size = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let kind = [b[i + 4], b[i + 5], b[i + 6], b[i + 7]];
        if size < 8 || i + size > b.len() {
            break;
        }
        out.push((kind, &b[i + 8..i + size]));
        i += size;
    }
    out
}

fn child<'a>(b: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(b)
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, v)| v)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
}

/// The tracks of an MP4 written by [`Mp4Writer`] (one sample per chunk).
/// Anything else is refused with a reason, never a panic.
pub fn read_tracks(file: &[u8]) -> Result<Vec<ReadTrack>, String> {
    let moov = children(file)
        .into_iter()
        .find(|(k, _)| k == b"moov")
        .map(|(_, v)| v)
        .ok_or("no moov box (an unfinished segment?)")?;
    let mut out = Vec::new();
    for (_, trak) in children(moov).into_iter().filter(|(k, _)| k == b"trak") {
        let bad = |what: &str| format!("track without {what}");
        let tkhd = child(trak, b"tkhd").ok_or_else(|| bad("tkhd"))?;
        let mdia = child(trak, b"mdia").ok_or_else(|| bad("mdia"))?;
        let mdhd = child(mdia, b"mdhd").ok_or_else(|| bad("mdhd"))?;
        let hdlr = child(mdia, b"hdlr").ok_or_else(|| bad("hdlr"))?;
        let stbl = child(mdia, b"minf")
            .and_then(|m| child(m, b"stbl"))
            .ok_or_else(|| bad("stbl"))?;
        let video = hdlr.get(8..12) == Some(b"vide");
        let timescale = be32(mdhd, 12).ok_or_else(|| bad("a timescale"))?;
        let stsd = child(stbl, b"stsd").ok_or_else(|| bad("stsd"))?;
        let sample_entry = children(stsd.get(8..).unwrap_or(&[]))
            .first()
            .map(|(k, body)| {
                let mut e = ((body.len() + 8) as u32).to_be_bytes().to_vec();
                e.extend_from_slice(k);
                e.extend_from_slice(body);
                e
            })
            .ok_or_else(|| bad("a sample entry"))?;
        let stsc = child(stbl, b"stsc").ok_or_else(|| bad("stsc"))?;
        if be32(stsc, 4) != Some(1) || be32(stsc, 12) != Some(1) {
            return Err("not one sample per chunk: not a camfleet segment".into());
        }
        let table = |kind: &[u8; 4]| child(stbl, kind);
        let stsz = table(b"stsz").ok_or_else(|| bad("stsz"))?;
        let n = be32(stsz, 8).ok_or_else(|| bad("a sample count"))? as usize;
        // Every sample has at least a 4-byte chunk offset in the file: a
        // count beyond that is a lie, and would size the tables below
        // (with a fixed sample size, nothing else bounds them).
        if n > file.len() / 4 {
            return Err(format!("{n} samples cannot fit in {} bytes", file.len()));
        }
        let fixed = be32(stsz, 4).unwrap_or(0);
        let mut sizes = Vec::with_capacity(n.min(1 << 20));
        for i in 0..n {
            sizes.push(if fixed != 0 {
                fixed
            } else {
                be32(stsz, 12 + 4 * i).ok_or("stsz cut short")?
            });
        }
        let offsets: Vec<u64> = if let Some(co) = table(b"stco") {
            (0..n)
                .map(|i| be32(co, 8 + 4 * i).map(u64::from))
                .collect::<Option<_>>()
                .ok_or("stco cut short")?
        } else {
            let co = table(b"co64").ok_or_else(|| bad("chunk offsets"))?;
            (0..n)
                .map(|i| {
                    co.get(8 + 8 * i..16 + 8 * i)
                        .map(|x| u64::from_be_bytes(x.try_into().unwrap_or([0; 8])))
                })
                .collect::<Option<_>>()
                .ok_or("co64 cut short")?
        };
        let stts = table(b"stts").ok_or_else(|| bad("stts"))?;
        let mut durations = Vec::with_capacity(n.min(1 << 20));
        for e in 0..be32(stts, 4).unwrap_or(0) as usize {
            let count = be32(stts, 8 + 8 * e).ok_or("stts cut short")?;
            let d = be32(stts, 12 + 8 * e).ok_or("stts cut short")?;
            for _ in 0..count {
                if durations.len() >= n {
                    break;
                }
                durations.push(d);
            }
        }
        durations.resize(n, 0);
        let sync: Option<std::collections::HashSet<u32>> = table(b"stss").map(|t| {
            // Up to the box's end, whatever count it claims (a count of
            // billions walked billions of missing entries: 15 s per file).
            (0..be32(t, 4).unwrap_or(0) as usize)
                .map_while(|i| be32(t, 8 + 4 * i))
                .collect()
        });
        let mut cts = Vec::new();
        if let Some(t) = table(b"ctts") {
            // Signed (version 1) or unsigned offsets; negative ones are
            // not written by camfleet and read as zero.
            let signed = t.first() == Some(&1);
            for e in 0..be32(t, 4).unwrap_or(0) as usize {
                let (Some(count), Some(v)) = (be32(t, 8 + 8 * e), be32(t, 12 + 8 * e)) else {
                    break;
                };
                let v = if signed && (v as i32) < 0 { 0 } else { v };
                for _ in 0..count {
                    if cts.len() >= n {
                        break;
                    }
                    cts.push(v);
                }
            }
            cts.resize(n, 0);
        }
        let samples = (0..n)
            .map(|i| {
                let is_sync = sync.as_ref().is_none_or(|s| s.contains(&(i as u32 + 1)));
                (offsets[i], sizes[i], durations[i], is_sync)
            })
            .collect::<Vec<_>>();
        for &(off, size, _, _) in &samples {
            if off.saturating_add(u64::from(size)) > file.len() as u64 {
                return Err("a sample lies outside the file".into());
            }
        }
        out.push(ReadTrack {
            video,
            timescale,
            sample_entry,
            width: be32(tkhd, 76).unwrap_or(0) >> 16,
            height: be32(tkhd, 80).unwrap_or(0) >> 16,
            samples,
            cts,
        });
    }
    if !out.iter().any(|t| t.video) {
        return Err("no video track".into());
    }
    Ok(out)
}

/// Join segments into one MP4: `parts` are (segment bytes, its start in
/// ms since the epoch), in time order; only samples of `[from_ms, to_ms)`
/// are kept, from the keyframe at or before `from_ms`. Gaps between
/// segments are closed up (the file plays them back to back). All parts
/// must share the video sample entry (same codec settings).
pub struct Concat<W: Read + Write + Seek> {
    writer: Option<Mp4Writer<W>>,
    video_entry: Vec<u8>,
    audio: Option<(usize, Vec<u8>)>,
    /// Running timestamps per track (video, audio), in their timescales.
    ts: [i64; 2],
    pub samples: u64,
}

impl<W: Read + Write + Seek> Concat<W> {
    pub fn new() -> Self {
        Self {
            writer: None,
            video_entry: Vec::new(),
            audio: None,
            ts: [0, 0],
            samples: 0,
        }
    }

    pub fn add(
        &mut self,
        out: impl FnOnce() -> std::io::Result<W>,
        file: &[u8],
        start_ms: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<(), String> {
        let tracks = read_tracks(file)?;
        let video = tracks.iter().find(|t| t.video).ok_or("no video track")?;
        // The video samples that overlap [from_ms, to_ms), started from
        // the last keyframe at or before the first of them.
        let ms = |d: u32| f64::from(d) * 1000.0 / f64::from(video.timescale.max(1));
        let mut starts = Vec::with_capacity(video.samples.len());
        let mut t = start_ms as f64;
        for s in &video.samples {
            starts.push(t);
            t += ms(s.2);
        }
        let overlaps = |i: usize| {
            starts[i] + ms(video.samples[i].2) > from_ms as f64 && starts[i] < to_ms as f64
        };
        let Some(lo) = (0..starts.len()).find(|&i| overlaps(i)) else {
            return Ok(());
        };
        let last = (0..starts.len())
            .rev()
            .find(|&i| overlaps(i))
            .map_or(lo, |i| i)
            + 1;
        let Some(first) = (0..=lo)
            .rev()
            .find(|&i| video.samples[i].3)
            .or_else(|| (lo..last).find(|&i| video.samples[i].3))
        else {
            return Ok(()); // no keyframe to start from
        };
        let span_ms = |from: usize, to: usize| -> f64 {
            video.samples[from..to]
                .iter()
                .map(|s| f64::from(s.2) * 1000.0 / f64::from(video.timescale.max(1)))
                .sum()
        };
        let (kept_from_ms, kept_to_ms) = (
            start_ms as f64 + span_ms(0, first),
            start_ms as f64 + span_ms(0, last),
        );
        match &self.writer {
            None => {
                self.writer = Some(
                    Mp4Writer::with_reserve(
                        out().map_err(|e| e.to_string())?,
                        video.sample_entry.clone(),
                        (video.width, video.height),
                        video.timescale,
                        moov_reserve_for((to_ms.saturating_sub(from_ms) / 1000).max(0) as u64),
                    )
                    .map_err(|e| e.to_string())?,
                );
                self.video_entry = video.sample_entry.clone();
            }
            Some(_) if video.sample_entry != self.video_entry => {
                return Err(
                    "the camera's video settings change inside the range; export it in parts"
                        .into(),
                );
            }
            Some(_) => {}
        }
        let w = self.writer.as_mut().ok_or("no writer")?;
        for (i, &(off, size, d, sync)) in video.samples.iter().enumerate().take(last).skip(first) {
            let data = &file[off as usize..off as usize + size as usize];
            // Decode time plus the composition offset: the writer derives
            // both again from presentation times.
            let cts = i64::from(video.cts.get(i).copied().unwrap_or(0));
            w.push(self.ts[0] + cts, data, sync)
                .map_err(|e| e.to_string())?;
            self.ts[0] += i64::from(d);
            self.samples += 1;
        }
        if let Some(a) = tracks.iter().find(|t| !t.video) {
            let track = match &self.audio {
                Some((i, entry)) if *entry == a.sample_entry => Some(*i),
                Some(_) => None, // audio settings changed: video only from here
                None => {
                    let i = w.add_audio(a.sample_entry.clone(), a.timescale, 1024);
                    self.audio = Some((i, a.sample_entry.clone()));
                    Some(i)
                }
            };
            if let Some(track) = track {
                // Audio samples that fall inside the kept video.
                self.ts[1] = self.ts[1].max(0);
                let mut at = start_ms as f64;
                for &(off, size, d, _) in &a.samples {
                    if at >= kept_from_ms && at < kept_to_ms {
                        let data = &file[off as usize..off as usize + size as usize];
                        w.push_to(track, self.ts[1], data, true)
                            .map_err(|e| e.to_string())?;
                        self.ts[1] += i64::from(d);
                    }
                    at += f64::from(d) * 1000.0 / f64::from(a.timescale.max(1));
                }
            }
        }
        Ok(())
    }

    /// Finish the file; None when no sample was in the range.
    pub fn finish(self) -> Result<Option<W>, String> {
        match self.writer {
            Some(w) if self.samples > 0 => w.finish().map(Some).map_err(|e| e.to_string()),
            _ => Ok(None),
        }
    }
}

impl<W: Read + Write + Seek> Default for Concat<W> {
    fn default() -> Self {
        Self::new()
    }
}

/// The top-level boxes of a file: (kind, size). For checks and the scrub.
pub fn top_boxes(b: &[u8]) -> Vec<([u8; 4], u64)> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i + 8 <= b.len() {
        let size = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as u64;
        let kind = [b[i + 4], b[i + 5], b[i + 6], b[i + 7]];
        if size < 8 {
            break;
        }
        out.push((kind, size));
        i += size as usize;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(start_key: bool, frames: i64, audio: bool) -> Vec<u8> {
        let entry = bx(b"avc1", &[0u8; 78]);
        let mut w =
            Mp4Writer::new(std::io::Cursor::new(Vec::new()), entry, (640, 360), 90_000).unwrap();
        let a = audio.then(|| w.add_audio(bx(b"mp4a", &[0u8; 28]), 16_000, 1024));
        for i in 0..frames {
            let key = (i % 10 == 0) && (start_key || i > 0);
            w.push(i * 9000, &[0, 0, 0, 2, 0x65, i as u8], key).unwrap();
            if let Some(a) = a {
                w.push_to(a, i * 1600, &[0x21, i as u8], true).unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn segments_read_back_and_join_trimmed_to_the_range() {
        let one = segment(true, 30, true); // 3 s at 10 fps
        let tracks = read_tracks(&one).unwrap();
        assert_eq!(tracks.len(), 2);
        assert!(tracks[0].video && !tracks[1].video);
        assert_eq!((tracks[0].width, tracks[0].height), (640, 360));
        assert_eq!(tracks[0].samples.len(), 30);
        assert_eq!(tracks[0].samples.iter().filter(|s| s.3).count(), 3);
        assert_eq!(
            &one[tracks[0].samples[5].0 as usize..][..6],
            &[0, 0, 0, 2, 0x65, 5]
        );
        // Two segments, 10 s apart; keep 1.5 s .. 11.2 s.
        let two = segment(true, 30, true);
        let mut c = Concat::new();
        c.add(
            || Ok(std::io::Cursor::new(Vec::new())),
            &one,
            0,
            1500,
            11_200,
        )
        .unwrap();
        c.add(|| unreachable!(), &two, 10_000, 1500, 11_200)
            .unwrap();
        let out = c.finish().unwrap().unwrap().into_inner();
        let t = read_tracks(&out).unwrap();
        // From the keyframe at 1.0 s: 20 frames; then 0..1.2 s: 12 frames.
        assert_eq!(t[0].samples.len(), 32);
        assert!(t[0].samples[0].3, "starts at a keyframe");
        assert!(!t[1].samples.is_empty(), "audio kept");
        // A range with nothing in it gives no file.
        let mut none: Concat<std::io::Cursor<Vec<u8>>> = Concat::new();
        none.add(|| unreachable!(), &one, 0, 50_000, 60_000)
            .unwrap();
        assert!(none.finish().unwrap().is_none());
        // Garbage is refused, not panicked on.
        assert!(read_tracks(&one[..200]).is_err());
        assert!(read_tracks(b"\0\0\0\x08moov").is_err());
    }

    #[test]
    fn a_segment_has_ftyp_moov_free_mdat_with_every_sample() {
        let entry = bx(b"avc1", &[0u8; 78]);
        let mut w =
            Mp4Writer::new(std::io::Cursor::new(Vec::new()), entry, (640, 360), 90_000).unwrap();
        for i in 0..50i64 {
            w.push(i * 3600, &[0, 0, 0, 4, 0x65, 1, 2, 3], i % 25 == 0)
                .unwrap();
        }
        assert_eq!(w.duration(), 50 * 3600);
        let file = w.finish().unwrap().into_inner();
        let boxes = top_boxes(&file);
        let kinds: Vec<&[u8]> = boxes.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(kinds, [b"ftyp".as_slice(), b"moov", b"free", b"mdat"]);
        assert_eq!(boxes[3].1, 8 + 50 * 8, "mdat holds every frame");
        assert_eq!(boxes.iter().map(|(_, s)| s).sum::<u64>(), file.len() as u64);
    }

    /// I P B B P B B ... in decode order, presentation times reordered as
    /// an encoder with two B-frames sends them (3600 = 40 ms at 90 kHz).
    fn b_frames(w: &mut Mp4Writer<std::io::Cursor<Vec<u8>>>, gops: i64) {
        let d = 3600;
        for g in 0..gops {
            let base = g * 7 * d;
            // decode order: I0 P3 B1 B2 P6 B4 B5
            for (k, slot) in [0, 3, 1, 2, 6, 4, 5].into_iter().enumerate() {
                w.push(base + slot * d, &[0, 0, 0, 2, 0x41, k as u8], k == 0)
                    .unwrap();
            }
        }
    }

    #[test]
    fn reordered_frames_get_ctts_an_edit_list_and_monotonic_decode_times() {
        let entry = bx(b"avc1", &[0u8; 78]);
        let mut w =
            Mp4Writer::new(std::io::Cursor::new(Vec::new()), entry, (640, 360), 90_000).unwrap();
        b_frames(&mut w, 3);
        assert_eq!(w.duration(), 21 * 3600, "every frame 40 ms");
        let file = w.finish().unwrap().into_inner();
        let t = read_tracks(&file).unwrap();
        let v = &t[0];
        assert_eq!(v.samples.len(), 21);
        assert!(v.samples.iter().all(|s| s.2 == 3600), "decode steps even");
        // Presentation = decode + offset, and shown in slot order.
        let mut dts = 0i64;
        let mut pts = Vec::new();
        for (i, s) in v.samples.iter().enumerate() {
            pts.push(dts + i64::from(v.cts[i]));
            dts += i64::from(s.2);
        }
        let lead = i64::from(v.cts[0]);
        let shown: Vec<i64> = pts.iter().map(|p| (p - lead) / 3600).collect();
        assert_eq!(&shown[..7], &[0, 3, 1, 2, 6, 4, 5]);
        let moov = children(&file)
            .into_iter()
            .find(|(k, _)| k == b"moov")
            .unwrap()
            .1;
        let trak = child(moov, b"trak").unwrap();
        assert!(
            child(trak, b"edts").is_some(),
            "an edit list starts at the first frame shown"
        );
        // No reordering: neither ctts nor an edit list.
        let plain = segment(true, 10, false);
        let moov = children(&plain)
            .into_iter()
            .find(|(k, _)| k == b"moov")
            .unwrap()
            .1;
        let trak = child(moov, b"trak").unwrap();
        assert!(child(trak, b"edts").is_none());
        assert!(read_tracks(&plain).unwrap()[0].cts.is_empty());
    }

    #[test]
    fn a_moov_larger_than_its_room_moves_the_media_once_and_stays_first() {
        let entry = bx(b"avc1", &[0u8; 78]);
        let mut w = Mp4Writer::with_reserve(
            std::io::Cursor::new(Vec::new()),
            entry.clone(),
            (640, 360),
            90_000,
            64,
        )
        .unwrap();
        let mut a = Mp4Writer::with_reserve(
            std::io::Cursor::new(Vec::new()),
            entry,
            (640, 360),
            90_000,
            0,
        )
        .unwrap();
        for i in 0..3000i64 {
            let frame = [0, 0, 0, 4, 0x65, (i % 251) as u8, (i / 251) as u8, 7];
            w.push(i * 3600, &frame, i % 25 == 0).unwrap();
            a.push(i * 3600, &frame, i % 25 == 0).unwrap();
        }
        for file in [
            w.finish().unwrap().into_inner(),
            a.finish().unwrap().into_inner(),
        ] {
            let kinds: Vec<[u8; 4]> = top_boxes(&file).iter().map(|(k, _)| *k).collect();
            assert_eq!(&kinds[..2], &[*b"ftyp", *b"moov"]);
            assert_eq!(kinds.last(), Some(b"mdat"));
            let t = read_tracks(&file).unwrap();
            assert_eq!(t[0].samples.len(), 3000);
            for (i, s) in t[0].samples.iter().enumerate() {
                let at = s.0 as usize;
                assert_eq!(
                    &file[at..at + 8],
                    &[0, 0, 0, 4, 0x65, (i % 251) as u8, (i / 251) as u8, 7],
                    "sample {i} where the table says"
                );
            }
        }
    }

    #[test]
    fn exports_are_moov_first_and_keep_b_frame_order() {
        let entry = bx(b"avc1", &[0u8; 78]);
        let mut w =
            Mp4Writer::new(std::io::Cursor::new(Vec::new()), entry, (640, 360), 90_000).unwrap();
        b_frames(&mut w, 10);
        let seg = w.finish().unwrap().into_inner();
        let mut c = Concat::new();
        c.add(|| Ok(std::io::Cursor::new(Vec::new())), &seg, 0, 0, 60_000)
            .unwrap();
        let out = c.finish().unwrap().unwrap().into_inner();
        let kinds: Vec<[u8; 4]> = top_boxes(&out).iter().map(|(k, _)| *k).collect();
        assert_eq!(&kinds[..2], &[*b"ftyp", *b"moov"]);
        let (a, b) = (read_tracks(&seg).unwrap(), read_tracks(&out).unwrap());
        assert_eq!(a[0].cts, b[0].cts);
        assert_eq!(a[0].samples.len(), b[0].samples.len());
    }
}
