//! Thin helpers over `hdf5` for the array shapes D4RL uses.

use std::path::Path;

use anyhow::{Context, Result};
use ndarray::Array2;

/// gzip level D4RL's own files use; also what `ofql dataset generate` writes.
pub const GZIP_LEVEL: u8 = 4;

/// Write a 2-D float32 array as a chunked, gzip-compressed dataset.
pub fn write_f32_2d(file: &hdf5::File, name: &str, data: &Array2<f32>) -> Result<()> {
    let rows = data.nrows().clamp(1, 4096);
    file.new_dataset_builder()
        .chunk((rows, data.ncols().max(1)))
        .deflate(GZIP_LEVEL)
        .with_data(data)
        .create(name)
        .with_context(|| format!("write dataset `{name}`"))?;
    Ok(())
}

/// Read a 2-D float32 dataset; float64 data is converted.
pub fn read_f32_2d(file: &hdf5::File, name: &str) -> Result<Array2<f32>> {
    let ds = file.dataset(name).with_context(|| format!("dataset `{name}` is missing"))?;
    ds.read_2d::<f32>().with_context(|| format!("read dataset `{name}`"))
}

/// Open an HDF5 file for reading with an error that names the file.
pub fn open(path: &Path) -> Result<hdf5::File> {
    hdf5::File::open(path).with_context(|| format!("open HDF5 file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use hdf5::filters::Filter;

    use super::*;

    #[test]
    fn gzip_dataset_round_trips() {
        assert!(hdf5::filters::deflate_available(), "HDF5 was built without the deflate filter");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.hdf5");
        let obs = Array2::from_shape_fn((1000, 17), |(i, j)| (i as f32) * 0.01 - (j as f32) * 0.5);
        {
            let f = hdf5::File::create(&path).unwrap();
            write_f32_2d(&f, "observations", &obs).unwrap();
        }
        let f = open(&path).unwrap();
        let ds = f.dataset("observations").unwrap();
        assert!(ds.filters().iter().any(|x| matches!(x, Filter::Deflate(_))), "{:?}", ds.filters());
        assert_eq!(read_f32_2d(&f, "observations").unwrap(), obs);
        // Compressed: far below the 68 kB of raw floats for such regular data.
        assert!(std::fs::metadata(&path).unwrap().len() < 68_000);
        let err = read_f32_2d(&f, "actions").unwrap_err();
        assert!(format!("{err:#}").contains("`actions` is missing"));
    }
}
