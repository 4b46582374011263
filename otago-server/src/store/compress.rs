//! Compressing an asset once, when it is stored: gzip and Brotli siblings, kept only when
//! they are clearly smaller than the plain bytes.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::Encodings;

/// Files smaller than this are not worth compressing.
const MIN_SIZE: u64 = 512;

/// A variant is kept only if it is at most this share of the plain size (in percent).
const MAX_RATIO_PERCENT: u64 = 95;

/// Brotli quality by size, at most `max`: the best for bundles, faster for large media.
fn brotli_quality(size: u64, max: u32) -> u32 {
    let by_size = match size {
        0..=4_194_304 => 11,
        4_194_305..=33_554_432 => 9,
        _ => 5,
    };
    by_size.min(max)
}

/// Makes `<plain>.gz` and `<plain>.br` beside `plain` (each written to `tmp_dir` first, synced and
/// renamed into place) and says which were kept.
pub(super) fn make_variants(
    plain: &Path,
    tmp_dir: &Path,
    size: u64,
    max_quality: u32,
) -> io::Result<Encodings> {
    let mut encodings = Encodings::default();
    if size < MIN_SIZE {
        return Ok(encodings);
    }
    encodings.gzip = make_variant(plain, tmp_dir, size, "gz", |input, output| {
        let mut encoder = GzEncoder::new(output, Compression::best());
        io::copy(input, &mut encoder)?;
        encoder.finish()?.flush()
    })?;
    encodings.brotli = make_variant(plain, tmp_dir, size, "br", |input, output| {
        let params = brotli::enc::BrotliEncoderParams {
            quality: i32::try_from(brotli_quality(size, max_quality)).unwrap_or(9),
            lgwin: 22,
            size_hint: usize::try_from(size).unwrap_or(0),
            ..Default::default()
        };
        let mut input = input;
        brotli::BrotliCompress(&mut input, output, &params)?;
        output.flush()
    })?;
    Ok(encodings)
}

/// The path of a variant: the plain path plus `.gz` / `.br`.
pub(super) fn variant_path(plain: &Path, suffix: &str) -> PathBuf {
    let mut name = plain.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn make_variant(
    plain: &Path,
    tmp_dir: &Path,
    size: u64,
    suffix: &str,
    compress: impl FnOnce(&mut dyn Read, &mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<bool> {
    let tmp = tmp_dir.join(format!("variant-{:016x}.{suffix}", rand::random::<u64>()));
    let result = (|| {
        let mut input = BufReader::with_capacity(256 * 1024, File::open(plain)?);
        let mut output = BufWriter::with_capacity(256 * 1024, File::create_new(&tmp)?);
        compress(&mut input, &mut output)?;
        let file = output
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        let compressed = file.metadata()?.len();
        if compressed.saturating_mul(100) > size.saturating_mul(MAX_RATIO_PERCENT) {
            return Ok(false);
        }
        file.sync_all()?;
        std::fs::rename(&tmp, variant_path(plain, suffix))?;
        Ok(true)
    })();
    if !matches!(result, Ok(true)) {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_files_get_both_variants_and_random_ones_none() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("text");
        std::fs::write(&text, "hello compressible world ".repeat(200)).unwrap();
        let made = make_variants(&text, dir.path(), 5000, 11).unwrap();
        assert!(made.gzip && made.brotli);
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(File::open(variant_path(&text, "gz")).unwrap())
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, std::fs::read(&text).unwrap());

        let noise = dir.path().join("noise");
        let bytes: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
        std::fs::write(&noise, &bytes).unwrap();
        assert_eq!(
            make_variants(&noise, dir.path(), 4096, 11).unwrap(),
            Encodings::default()
        );
        assert!(!variant_path(&noise, "gz").exists());
        // Only the two plain files and the two kept variants remain: no temp files.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    }
}
