// What `libramil patch` writes for one slide, in TRIDENT's layout (docs/slides.md, "Outputs"):
// the coordinates file (HDF5), the tissue contours as GeoJSON for QuPath, the thumbnail and the
// contour picture (JPEG). Every file is written under a temporary name and renamed.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/slides/image.h"
#include "data/slides/thumbnail.h"
#include "data/slides/tissue.h"

namespace lm::slides {

using Coord = std::array<int64_t, 2>;  // level-0 (x, y) of a patch's top-left corner

// DIR/<mag>x_<ps>px_<overlap>px_overlap, e.g. "20x_256px_0px_overlap".
std::string patch_config_name(double mag, int patch_size, int overlap);

// `coords` (N, 2) int64 with TRIDENT's attributes (patch_size, patch_size_level0,
// target_magnification, level0_magnification, overlap, mpp, name) on the dataset.
void write_coords_h5(const std::string& path, const std::string& slide, const std::vector<Coord>& coords,
                     const PatchGeometry& g);

// A FeatureCollection with one Polygon per tissue region (outer ring, then its holes), level-0
// pixel coordinates, rings closed, QuPath's annotation conventions (docs/slides.md).
std::string contours_geojson(const std::vector<TissueRegion>& regions, double dx, double dy);

// The thumbnail with region outlines (green), hole outlines (blue) and the kept patches' squares
// (black), for a person to check the segmentation at a glance.
RgbImage draw_contours(const RgbImage& thumb, const std::vector<TissueRegion>& regions, const std::vector<Coord>& coords,
                       int64_t patch_size_level0, double dx, double dy);

}  // namespace lm::slides
