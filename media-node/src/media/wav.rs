//! WAV files: prompts in (8 kHz mono PCM16, µ-law or A-law) and recordings out (PCM16).

/// What is wrong with a prompt file, said so that an ops team can fix it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WavError {
    /// Not RIFF/WAVE.
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWav,
    /// No `fmt ` or `data` chunk, or a truncated one.
    #[error("the WAV file is truncated or has no {0} chunk")]
    Missing(&'static str),
    /// An encoding other than PCM16, µ-law or A-law.
    #[error(
        "WAV encoding {format} with {bits} bits is not supported: use 16-bit PCM, µ-law or A-law"
    )]
    Encoding {
        /// The format tag.
        format: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// Not 8 kHz mono.
    #[error(
        "the prompt is {rate} Hz with {channels} channel(s): it must be 8000 Hz mono (e.g. `sox in.wav -r 8000 -c 1 -b 16 out.wav`)"
    )]
    Shape {
        /// Sample rate.
        rate: u32,
        /// Channels.
        channels: u16,
    },
}

/// Decoded audio: 8 kHz mono linear samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    /// The samples.
    pub samples: Vec<i16>,
}

impl Audio {
    /// Length in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 / 8
    }
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(i)?,
        *b.get(i + 1)?,
        *b.get(i + 2)?,
        *b.get(i + 3)?,
    ]))
}

/// Reads an 8 kHz mono WAV (PCM16, µ-law or A-law) into linear samples.
pub fn read(bytes: &[u8]) -> Result<Audio, WavError> {
    let (channels, samples) = read_channels(bytes)?;
    if channels != 1 {
        return Err(WavError::Shape {
            rate: 8000,
            channels,
        });
    }
    Ok(Audio { samples })
}

/// Reads an 8 kHz WAV of any channel count (PCM16, µ-law or A-law): the channel count and the
/// interleaved linear samples. Recordings are 2-channel (caller left, agent right).
pub fn read_channels(bytes: &[u8]) -> Result<(u16, Vec<i16>), WavError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    let mut pos = 12usize;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32_at(bytes, pos + 4).ok_or(WavError::Missing("chunk"))? as usize;
        let body = pos + 8;
        let end = body.saturating_add(size).min(bytes.len());
        if id == b"fmt " {
            let format = u16_at(bytes, body).ok_or(WavError::Missing("fmt"))?;
            let channels = u16_at(bytes, body + 2).ok_or(WavError::Missing("fmt"))?;
            let rate = u32_at(bytes, body + 4).ok_or(WavError::Missing("fmt"))?;
            let bits = u16_at(bytes, body + 14).ok_or(WavError::Missing("fmt"))?;
            fmt = Some((format, channels, rate, bits));
        } else if id == b"data" {
            let (format, channels, rate, bits) = fmt.ok_or(WavError::Missing("fmt"))?;
            if rate != 8000 || channels == 0 {
                return Err(WavError::Shape { rate, channels });
            }
            let data = &bytes[body..end];
            let samples = match (format, bits) {
                (1, 16) => data
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect(),
                (7, 8) => data
                    .iter()
                    .map(|&c| super::g711::ulaw_to_linear(c))
                    .collect(),
                (6, 8) => data
                    .iter()
                    .map(|&c| super::g711::alaw_to_linear(c))
                    .collect(),
                _ => return Err(WavError::Encoding { format, bits }),
            };
            return Ok((channels, samples));
        }
        // Chunks are word-aligned.
        pos = body.saturating_add(size).saturating_add(size & 1);
    }
    Err(WavError::Missing("data"))
}

/// The 44-byte header of an 8 kHz PCM16 WAV with `channels` interleaved channels and
/// `data_len` bytes of samples. Recordings are written as a stream: this header first with the
/// length unknown, then again with the final length once the recording ends.
pub fn header(channels: u16, data_len: u32) -> [u8; 44] {
    let mut out = [0u8; 44];
    let block = 2 * channels;
    let fields: [(usize, &[u8]); 12] = [
        (0, b"RIFF"),
        (4, &36u32.saturating_add(data_len).to_le_bytes()),
        (8, b"WAVEfmt "),
        (16, &16u32.to_le_bytes()),
        (20, &1u16.to_le_bytes()),
        (22, &channels.to_le_bytes()),
        (24, &8000u32.to_le_bytes()),
        (28, &(8000u32 * u32::from(block)).to_le_bytes()),
        (32, &block.to_le_bytes()),
        (34, &16u16.to_le_bytes()),
        (36, b"data"),
        (40, &data_len.to_le_bytes()),
    ];
    for (at, bytes) in fields {
        out[at..at + bytes.len()].copy_from_slice(bytes);
    }
    out
}

/// Writes 8 kHz mono PCM16 (or 2-channel, interleaved, with `channels` = 2).
pub fn write_pcm16(samples: &[i16], channels: u16) -> Vec<u8> {
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(&header(channels, data_len));
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm16_round_trip() {
        let samples: Vec<i16> = (0..1600).map(|i| ((i * 37) % 2000 - 1000) as i16).collect();
        let audio = read(&write_pcm16(&samples, 1)).expect("valid");
        assert_eq!(audio.samples, samples);
        assert_eq!(audio.duration_ms(), 200);
        let stereo = write_pcm16(&samples, 2);
        assert_eq!(read_channels(&stereo), Ok((2, samples.clone())));
        assert!(read(&stereo).is_err(), "prompts are mono");
    }

    #[test]
    fn rejects_what_it_cannot_play_with_a_fix() {
        assert_eq!(read(b"nope"), Err(WavError::NotWav));
        let mut stereo = write_pcm16(&[0; 16], 2);
        // 44.1 kHz instead of 8 kHz.
        stereo[24..28].copy_from_slice(&44100u32.to_le_bytes());
        let err = read(&stereo).expect_err("wrong shape");
        assert!(err.to_string().contains("8000 Hz mono"), "{err}");
        let truncated = &write_pcm16(&[1, 2, 3], 1)[..30];
        assert!(read(truncated).is_err());
    }

    #[test]
    fn reads_the_demo_prompts() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo/prompts");
        let mut n = 0;
        for e in std::fs::read_dir(dir)
            .expect("prompts")
            .filter_map(Result::ok)
        {
            let bytes = std::fs::read(e.path()).expect("read");
            let audio = read(&bytes).unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
            assert!(
                audio.duration_ms() > 500,
                "{} is too short",
                e.path().display()
            );
            n += 1;
        }
        assert!(n >= 5);
    }
}
