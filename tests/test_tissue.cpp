// data/slides/: tissue segmentation of a thumbnail and the patch tissue fraction (docs/slides.md
// sections 3 and 4). Hand-derived cases for each primitive and each rule, invariants of the whole
// pipeline on random blob images, and a randomized comparison of the median filter, Otsu, the
// closing and the labelling against scipy / scikit-image (tools/tissue_primitives_reference.py).
#include <doctest/doctest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/slides/morphology.h"
#include "data/slides/tissue.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using namespace lm::slides;

namespace {

// A mask from rows of '#' (1) and '.' (0).
Mask mask_from(const std::vector<std::string>& rows) {
  Mask m(int(rows.at(0).size()), int(rows.size()));
  for (int y = 0; y < m.height; ++y)
    for (int x = 0; x < m.width; ++x) m.at(x, y) = rows[y].at(x) == '#';
  return m;
}

std::vector<std::string> mask_rows(const Mask& m) {
  std::vector<std::string> rows(m.height, std::string(m.width, '.'));
  for (size_t i = 0; i < m.v.size(); ++i) rows[i / m.width][i % m.width] = m.v[i] ? '#' : '.';
  return rows;
}

// Tissue-coloured '#' (200,100,150: saturation 128) on white '.' (saturation 0).
RgbImage thumb_from(const std::vector<std::string>& rows) {
  RgbImage img(int(rows.at(0).size()), int(rows.size()));
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x)
      rows[y][x] == '#' ? img.set(x, y, 200, 100, 150) : img.set(x, y, 255, 255, 255);
  return img;
}

// Options that make the pipeline a per-pixel rule: no median, fixed threshold, no closing,
// nothing dropped; with dx = dy = 1000, mpp0 = 1 one pixel is exactly 1 mm^2.
TissueOptions plain_options() {
  TissueOptions o;
  o.median = 1, o.threshold = 50, o.close_radius = 0;
  o.min_tissue_area_mm2 = 0, o.min_hole_area_mm2 = 0, o.max_holes = INT_MAX;
  return o;
}
TissueResult segment(const std::vector<std::string>& rows, const TissueOptions& o) {
  return segment_tissue(thumb_from(rows), 1000, 1000, 1, o);
}

}  // namespace

TEST_CASE("tissue: saturation and inverted grey of known colours") {
  RgbImage img(8, 1);
  const uint8_t colours[8][3] = {{255, 0, 0}, {0, 0, 0}, {255, 255, 255}, {200, 100, 50},
                                 {3, 2, 1},   {2, 1, 1}, {0, 255, 0},     {0, 0, 250}};
  for (int i = 0; i < 8; ++i) img.set(i, 0, colours[i][0], colours[i][1], colours[i][2]);
  // 255 (V - n) / V rounded half up: 255, 0 (V = 0), 0, 191.25 -> 191, 170, 127.5 -> 128, 255, 255.
  CHECK(saturation_channel(img) == std::vector<uint8_t>{255, 0, 0, 191, 170, 128, 255, 255});
  // 255 - round_half_up((299 R + 587 G + 114 B) / 1000): 76245 -> 76, 0, 255, 59800+58700+5700 -> 124,
  // 897+1174+114 -> 2, 598+587+114 -> 1, 149685 -> 150, 28500 -> 28.5 -> 29.
  CHECK(inverted_grey_channel(img) == std::vector<uint8_t>{179, 255, 0, 131, 253, 254, 105, 226});
}

TEST_CASE("tissue: median filter on hand-made images") {
  // A 3x3 block of 9s in a 5x5 of zeros, k = 3: a pixel's window holds (rows overlap) x (columns
  // overlap) block pixels, 1,2,3,2,1 per axis; the median is 9 where that is >= 5 of 9: a plus.
  std::vector<uint8_t> block(25, 0);
  for (int y = 1; y <= 3; ++y)
    for (int x = 1; x <= 3; ++x) block[y * 5 + x] = 9;
  std::vector<uint8_t> plus(25, 0);
  for (int i : {7, 11, 12, 13, 17}) plus[i] = 9;
  CHECK(median_filter(block, 5, 5, 3) == plus);
  // Edge replication: [9,0,0,0,0], k = 3 -> pixel 0 sees 9,9,0 in each (replicated) row: 9.
  CHECK(median_filter({9, 0, 0, 0, 0}, 5, 1, 3) == std::vector<uint8_t>{9, 0, 0, 0, 0});
  CHECK(median_filter({9, 0, 0, 0, 0}, 1, 5, 3) == std::vector<uint8_t>{9, 0, 0, 0, 0});
  // A window wider than the image: [0,5,9], k = 5: columns {0,0,0,5,9}, {0,0,5,9,9}, {0,5,9,9,9}.
  CHECK(median_filter({0, 5, 9}, 3, 1, 5) == std::vector<uint8_t>{0, 5, 9});
  // A lone impulse vanishes; k = 1 is the identity.
  std::vector<uint8_t> impulse(25, 0);
  impulse[12] = 255;
  CHECK(median_filter(impulse, 5, 5, 3) == std::vector<uint8_t>(25, 0));
  CHECK(median_filter(impulse, 5, 5, 1) == impulse);
  CHECK_THROWS_AS(median_filter(impulse, 5, 5, 4), std::invalid_argument);
  CHECK_THROWS_AS(median_filter(impulse, 5, 5, 0), std::invalid_argument);
  CHECK_THROWS_AS(median_filter(impulse, 4, 5, 3), std::invalid_argument);
}

TEST_CASE("tissue: otsu threshold on analytic histograms") {
  auto otsu = [](std::vector<std::pair<int, int64_t>> bins) {
    Histogram h{};
    for (auto [value, count] : bins) h[value] = count;
    return otsu_threshold(h);
  };
  CHECK(otsu({}) == -1);                        // empty
  CHECK(otsu({{77, 1000}}) == -1);              // constant
  CHECK(otsu({{255, 5}}) == -1);
  CHECK(otsu({{254, 5}, {255, 1}}) == 254);
  // Three values: splitting {10,10,10,11 | 200 x4} gives 0.25 * 189.75^2 = 9001 against
  // (3/8)(5/8) 152.2^2 = 5429 for {10 x3 | 11, 200 x4}; T = 11..199 tie, the smallest wins.
  CHECK(otsu({{10, 3}, {11, 1}, {200, 4}}) == 11);
  CHECK(otsu({{10, 100}, {200, 100}}) == 10);  // every T in 10..199 splits the same: the smallest
  // {0,0 | 100,200,200} and {0,0,100 | 200,200} tie exactly (6/25 (500/3)^2 both): T = 0.
  CHECK(otsu({{0, 2}, {100, 1}, {200, 2}}) == 0);
  // Uniform 0..255: mu1 - mu0 = 128 for every T, so w0 w1 is maximal at n0 = 128: T = 127.
  std::vector<std::pair<int, int64_t>> uniform;
  for (int v = 0; v < 256; ++v) uniform.push_back({v, 1});
  CHECK(otsu(uniform) == 127);
  CHECK_THROWS_AS(otsu({{0, -1}, {9, 3}}), std::invalid_argument);
}

TEST_CASE("tissue: closing fills gaps up to 2r wide and keeps the border") {
  CHECK(mask_rows(close_square(mask_from({"####.####", "####.####", "####.####"}), 1)) ==
        std::vector<std::string>{"#########", "#########", "#########"});
  CHECK(mask_rows(close_square(mask_from({"###..####", "###..####"}), 1)) ==
        std::vector<std::string>{"#########", "#########"});
  // A 3-wide gap survives r = 1: the dilation leaves its middle column empty, and the erosion
  // brings back the columns next to it.
  CHECK(mask_rows(close_square(mask_from({"###...####", "###...####"}), 1)) ==
        std::vector<std::string>{"###...####", "###...####"});
  CHECK(mask_rows(close_square(mask_from({"##....##"}), 2)) == std::vector<std::string>{"########"});
  CHECK(mask_rows(close_square(mask_from({"##.....##"}), 2)) == std::vector<std::string>{"##.....##"});
  // Outside pixels are ignored: a full mask stays full (a zero-padded erosion would eat its
  // border) and a corner pixel survives.
  CHECK(close_square(Mask(6, 4, 1), 3).count() == 24);
  CHECK(mask_rows(close_square(mask_from({"#...", "....", "...."}), 1)) ==
        std::vector<std::string>{"#...", "....", "...."});
  // r = 0 is the identity; closing with a square leaves a diagonal pair as it is.
  CHECK(mask_rows(close_square(mask_from({"#.", ".#"}), 0)) == std::vector<std::string>{"#.", ".#"});
  const std::vector<std::string> diagonal = {".......", ".......", "..#....", "...#...", ".......", "......."};
  CHECK(mask_rows(close_square(mask_from(diagonal), 1)) == diagonal);
  CHECK(mask_rows(dilate_square(mask_from({".....", "..#..", "....."}), 1)) ==
        std::vector<std::string>{".###.", ".###.", ".###."});
  CHECK(mask_rows(erode_square(mask_from({"####.", "####.", "####."}), 1)) ==
        std::vector<std::string>{"###..", "###..", "###.."});
}

TEST_CASE("tissue: 4- and 8-connectivity on a checkerboard") {
  const Mask board = mask_from({"#.#.", ".#.#", "#.#.", ".#.#"});
  const Components four = label_components(board, 4), eight = label_components(board, 8);
  CHECK(four.count == 8);
  CHECK(eight.count == 1);
  CHECK(eight.sizes == std::vector<int64_t>{8, 8});
  CHECK(label_components(invert(board), 8).count == 1);
  CHECK(label_components(invert(board), 4).count == 8);
  // Labels in raster order of first pixels: (0,0), (2,0), (1,1), (3,1), ...
  CHECK((four.labels[0] == 1 && four.labels[2] == 2 && four.labels[5] == 3));
  CHECK(four.first_pixel == std::vector<int64_t>{-1, 0, 2, 5, 7, 8, 10, 13, 15});
  // A U shape: one component both ways; its two arms are joined only through the bottom row.
  const Components u = label_components(mask_from({"#.#", "#.#", "###"}), 4);
  CHECK(u.count == 1);
  CHECK(u.sizes == std::vector<int64_t>{2, 7});
  CHECK_THROWS_AS(label_components(board, 6), std::invalid_argument);
}

TEST_CASE("tissue: traced polygons of a pixel, an L, a diagonal pair and diagonal holes") {
  const Components one = label_components(mask_from({"....", "..#.", "...."}), 8);
  const Ring pixel = trace_boundary(one, 1, BoundaryKind::outer);
  CHECK(pixel == Ring{{2, 1}, {3, 1}, {3, 2}, {2, 2}});
  CHECK(signed_area(pixel) == 1.0);
  // L: column x = 0 for y = 0..2 plus (1, 2).
  const Ring ell = trace_boundary(label_components(mask_from({"#.", "#.", "##"}), 8), 1, BoundaryKind::outer);
  CHECK(ell == Ring{{0, 0}, {1, 0}, {1, 2}, {2, 2}, {2, 3}, {0, 3}});
  CHECK(signed_area(ell) == 4.0);
  // Two pixels touching at a corner: one 8-connected region whose outline passes (1,1) twice.
  const Ring pair = trace_boundary(label_components(mask_from({"#.", ".#"}), 8), 1, BoundaryKind::outer);
  CHECK(pair == Ring{{0, 0}, {1, 0}, {1, 1}, {2, 1}, {2, 2}, {1, 2}, {1, 1}, {0, 1}});
  CHECK(signed_area(pair) == 2.0);
  // Two diagonal background pixels inside tissue are two holes (4-connected), each traced as its
  // own square, clockwise with y up (negative area).
  const Components holes = label_components(invert(mask_from({"####", "#.##", "##.#", "####"})), 4);
  REQUIRE(holes.count == 2);
  CHECK(trace_boundary(holes, 1, BoundaryKind::hole) == Ring{{1, 1}, {1, 2}, {2, 2}, {2, 1}});
  CHECK(trace_boundary(holes, 2, BoundaryKind::hole) == Ring{{2, 2}, {2, 3}, {3, 3}, {3, 2}});
  CHECK(signed_area(trace_boundary(holes, 2, BoundaryKind::hole)) == -1.0);
  // Collinear corners are removed: a 3x2 block has 4 vertices.
  CHECK(trace_boundary(label_components(Mask(3, 2, 1), 8), 1, BoundaryKind::outer) ==
        Ring{{0, 0}, {3, 0}, {3, 2}, {0, 2}});
}

TEST_CASE("tissue: a ring is one region with one hole, kept or filled by area and max_holes") {
  const std::vector<std::string> ring = {".......", ".#####.", ".#...#.", ".#...#.", ".#...#.", ".#####.", "......."};
  TissueOptions o = plain_options();
  o.min_hole_area_mm2 = 9;  // the hole has 9 pixels = 9 mm^2: kept
  TissueResult r = segment(ring, o);
  CHECK(r.threshold == 50);
  REQUIRE(r.regions.size() == 1);
  CHECK(r.regions[0].outer == Ring{{1, 1}, {6, 1}, {6, 6}, {1, 6}});
  REQUIRE(r.regions[0].holes.size() == 1);
  CHECK(r.regions[0].holes[0] == Ring{{2, 2}, {2, 5}, {5, 5}, {5, 2}});
  CHECK(r.regions[0].area_mm2 == 16.0);
  CHECK(mask_rows(r.mask) == ring);
  CHECK(r.tissue_area_mm2 == 16.0);
  for (auto [min_hole, max_holes] : {std::pair{10.0, 8}, std::pair{0.0, 0}}) {
    o.min_hole_area_mm2 = min_hole, o.max_holes = max_holes;
    r = segment(ring, o);
    REQUIRE(r.regions.size() == 1);
    CHECK(r.regions[0].holes.empty());
    CHECK(r.regions[0].area_mm2 == 25.0);
    CHECK(r.mask.count() == 25);
  }
  // The same with the defaults' scale: dx = dy = 16, mpp0 = 0.5 -> 64 um^2 = 6.4e-5 mm^2 a pixel;
  // the 9-pixel hole (5.76e-4 mm^2) is filled, and 25 pixels (1.6e-3 mm^2) are below 0.02 mm^2.
  o = plain_options();
  o.min_tissue_area_mm2 = 0.02, o.min_hole_area_mm2 = 0.01, o.max_holes = 8;
  CHECK(segment_tissue(thumb_from(ring), 16, 16, 0.5, o).regions.empty());
  o.min_tissue_area_mm2 = 0.0016;  // 25 pixels (hole filled) = 1.6e-3 mm^2
  CHECK(segment_tissue(thumb_from(ring), 16, 16, 0.5, o).regions.size() == 1);
}

TEST_CASE("tissue: holes kept by area, then the largest max_holes, ties in raster order") {
  // Holes: A 2x2 (first pixel (1,1)), B 1x2 at (4,1), C 1x2 at (8,2), D one pixel at (10,3).
  const std::vector<std::string> rows = {"############", "#..#..######", "#..#####..##", "##########.#", "############"};
  TissueOptions o = plain_options();
  auto holes_and_area = [&](double min_hole, int max_holes) {
    o.min_hole_area_mm2 = min_hole, o.max_holes = max_holes;
    const TissueResult r = segment(rows, o);
    REQUIRE(r.regions.size() == 1);
    CHECK(r.mask.count() == int64_t(r.regions[0].area_mm2));
    return std::pair{r.regions[0].holes, r.regions[0].area_mm2};
  };
  const Ring a = {{1, 1}, {1, 3}, {3, 3}, {3, 1}}, b = {{4, 1}, {4, 2}, {6, 2}, {6, 1}};
  const Ring c = {{8, 2}, {8, 3}, {10, 3}, {10, 2}}, d = {{10, 3}, {10, 4}, {11, 4}, {11, 3}};
  CHECK(holes_and_area(2, 2) == std::pair{std::vector<Ring>{a, b}, 54.0});  // D too small, B before C
  CHECK(holes_and_area(2, 8) == std::pair{std::vector<Ring>{a, b, c}, 52.0});
  CHECK(holes_and_area(0, 8) == std::pair{std::vector<Ring>{a, b, c, d}, 51.0});
  CHECK(holes_and_area(0, 1) == std::pair{std::vector<Ring>{a}, 56.0});
  CHECK(holes_and_area(4, 8) == std::pair{std::vector<Ring>{a}, 56.0});  // 4 mm^2 >= 4: kept
  CHECK(holes_and_area(4.5, 8) == std::pair{std::vector<Ring>{}, 60.0});
}

TEST_CASE("tissue: min_tissue_area drops a speck; regions nested in holes") {
  const std::vector<std::string> speck = {"..........", ".####.....", ".####...#.", ".####.....", ".####.....", ".........."};
  TissueOptions o = plain_options();
  o.min_tissue_area_mm2 = 2;
  TissueResult r = segment(speck, o);
  REQUIRE(r.regions.size() == 1);
  CHECK(r.regions[0].outer == Ring{{1, 1}, {5, 1}, {5, 5}, {1, 5}});
  CHECK(r.mask.count() == 16);
  o.min_tissue_area_mm2 = 16;  // not below: kept
  CHECK(segment(speck, o).regions.size() == 1);
  o.min_tissue_area_mm2 = 16.5;
  r = segment(speck, o);
  CHECK(r.regions.empty());
  CHECK(r.mask.count() == 0);
  CHECK(r.tissue_area_mm2 == 0.0);
  // A ring (20 pixels) around a 12-pixel hole holding a 3-pixel island.
  const std::vector<std::string> nest = {".........", ".#######.", ".#.....#.", ".#.###.#.", ".#.....#.",
                                         ".#######.", "........."};
  o.min_hole_area_mm2 = 12, o.min_tissue_area_mm2 = 3;  // hole kept; the island is its own region
  r = segment(nest, o);
  REQUIRE(r.regions.size() == 2);
  CHECK(r.regions[0].area_mm2 == 20.0);
  CHECK(r.regions[0].holes == std::vector<Ring>{Ring{{2, 2}, {2, 5}, {7, 5}, {7, 2}}});
  CHECK(r.regions[1].outer == Ring{{3, 3}, {6, 3}, {6, 4}, {3, 4}});
  CHECK(r.regions[1].area_mm2 == 3.0);
  CHECK(mask_rows(r.mask) == nest);
  o.min_tissue_area_mm2 = 4;  // the island alone is too small
  r = segment(nest, o);
  REQUIRE(r.regions.size() == 1);
  CHECK(r.mask.count() == 20);
  o.min_hole_area_mm2 = 13;  // hole filled: the island becomes part of the ring's region (35 pixels)
  r = segment(nest, o);
  REQUIRE(r.regions.size() == 1);
  CHECK(r.regions[0].holes.empty());
  CHECK(r.regions[0].area_mm2 == 35.0);
  CHECK(r.mask.count() == 35);
}

TEST_CASE("tissue: pen, white and black exclusions on the unfiltered pixel") {
  RgbImage img(9, 1);
  const uint8_t px[9][3] = {{200, 100, 150}, {50, 100, 200}, {100, 120, 200}, {100, 121, 200}, {0, 0, 29},
                            {0, 0, 30},      {221, 240, 255}, {220, 240, 255}, {255, 255, 255}};
  for (int i = 0; i < 9; ++i) img.set(i, 0, px[i][0], px[i][1], px[i][2]);
  // Saturations 128, 191, 128, 128, 255, 255, 34, 35, 0; threshold 10.
  TissueOptions o = plain_options();
  o.threshold = 10;
  CHECK(mask_rows(segment_tissue(img, 1000, 1000, 1, o).mask)[0] == "#.#..#.#.");
  o.keep_pen = true;
  CHECK(mask_rows(segment_tissue(img, 1000, 1000, 1, o).mask)[0] == "####.#.#.");
  // The median hides a pen pixel in the channel, but the rule reads the pixel itself: it becomes a hole.
  RgbImage block = thumb_from({"#####", "#####", "#####", "#####", "#####"});
  block.set(2, 2, 50, 100, 200);
  o = plain_options();
  o.median = 3;
  TissueResult r = segment_tissue(block, 1000, 1000, 1, o);
  CHECK(r.mask.count() == 24);
  REQUIRE(r.regions.size() == 1);
  CHECK(r.regions[0].holes.size() == 1);
  o.keep_pen = true;
  CHECK(segment_tissue(block, 1000, 1000, 1, o).mask.count() == 25);
  // otsu-grey: 255 - grey; white glass is 0, the tissue colour 255 - 136 = 119; Otsu splits them at 0.
  o = plain_options();
  o.channel = "otsu-grey", o.threshold = -1;
  r = segment(std::vector<std::string>{"..##", "..##"}, o);
  CHECK(r.threshold == 0);
  CHECK(mask_rows(r.mask) == std::vector<std::string>{"..##", "..##"});
  // A constant image: Otsu undefined, no tissue.
  r = segment(std::vector<std::string>{"###", "###"}, o);
  CHECK((r.threshold == -1 && r.mask.count() == 0));
}

TEST_CASE("tissue: patch tissue fraction at exact boundaries and below a pixel") {
  // dx = dy = 4: pixel j spans [4j, 4j + 4), its centre is at 4j + 2.
  const Mask m = mask_from({"##..", "##..", "....", "...#"});
  const TissueFraction fast(m, 4, 4);
  auto both = [&](int64_t x, int64_t y, int64_t p0) {
    const double slow = patch_tissue_fraction(m, 4, 4, x, y, p0);
    CHECK(fast(x, y, p0) == slow);
    return slow;
  };
  CHECK(both(0, 0, 8) == 1.0);
  CHECK(both(2, 2, 8) == 1.0);   // [2, 10): centres 2 and 6, not 10
  CHECK(both(3, 3, 8) == 0.25);  // [3, 11): centres 6 and 10 -> pixels 1..2 per axis
  CHECK(both(2, 0, 4) == 1.0);   // centre 2 only
  CHECK(both(6, 0, 4) == 1.0);   // [6, 10): centre 6 (pixel 1)
  CHECK(both(7, 0, 4) == 0.0);   // [7, 11): centre 10 (pixel 2)
  CHECK(both(0, 0, 16) == 5.0 / 16);
  // No centre inside: the pixel holding the patch centre.
  CHECK(both(3, 0, 1) == 1.0);   // centre 3.5 -> pixel 0
  CHECK(both(8, 0, 1) == 0.0);   // centre 8.5 -> pixel 2
  CHECK(both(7, 0, 2) == 0.0);   // centre 8.0, on the edge: pixel 2 (pixels are half-open)
  CHECK(both(5, 5, 2) == 1.0);   // centre 6.0 -> pixel 1; [5, 7) holds centre 6 anyway
  CHECK(both(6, 0, 2) == 1.0);   // [6, 8) x [0, 2): x centre 6 but no y centre -> patch centre (7, 1)
  CHECK(both(13, 13, 2) == 1.0); // [13, 15): no centre (14 is pixel 3's); patch centre 14 -> pixel (3, 3)
  CHECK(both(15, 15, 2) == 0.0); // patch centre (16, 16) is beyond the thumbnail (4 px x dx 4 = 16): 0
  // dx = 2.5 (exact in binary): centres 1.25, 3.75, 6.25, 8.75.
  const Mask row = mask_from({".#.#"});
  CHECK(patch_tissue_fraction(row, 2.5, 2.5, 1, 0, 3) == 0.5);  // [1, 4): centres 1.25, 3.75
  CHECK(patch_tissue_fraction(row, 2.5, 2.5, 2, 0, 2) == 1.0);  // [2, 4): centre 3.75
  CHECK(patch_tissue_fraction(row, 2.5, 2.5, 4, 0, 2) == 0.0);  // none; centre 5 -> pixel 2
  CHECK(TissueFraction(row, 2.5, 2.5)(1, 0, 3) == 0.5);
  CHECK_THROWS_AS(patch_tissue_fraction(row, 0, 1, 0, 0, 1), std::invalid_argument);
  CHECK_THROWS_AS(fast(0, 0, 0), std::invalid_argument);
}

TEST_CASE("tissue: TissueFraction equals the direct rule on random patches") {
  std::mt19937 rng(7);
  for (double d : {4.0, 2.5, 2.0 / 3.0, 0.1 * 3, 16.000000000000004, 1.0, 7.3, 31.999999999999996}) {
    const int W = 1 + int(rng() % 23), H = 1 + int(rng() % 17);
    Mask m(W, H);
    for (auto& v : m.v) v = rng() % 2;
    const TissueFraction fast(m, d, d * 1.5);
    for (int t = 0; t < 400; ++t) {
      const int64_t span = int64_t(std::ceil(W * d)) + 6;
      const int64_t x = int64_t(rng() % span) - 3, y = int64_t(rng() % span) - 3;
      const int64_t p0 = 1 + int64_t(rng() % (int64_t(3 * d) + 2));
      CHECK(fast(x, y, p0) == patch_tissue_fraction(m, d, d * 1.5, x, y, p0));
    }
  }
}

TEST_CASE("tissue: option validation names the option") {
  auto message = [](auto tweak) -> std::string {
    TissueOptions o;
    tweak(o);
    try {
      check_tissue_options(o);
      segment_tissue(thumb_from({"#"}), 1, 1, 1, o);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  CHECK(message([](TissueOptions&) {}) == "");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {message([](TissueOptions& o) { o.channel = "hsv"; }), "channel"},
      {message([](TissueOptions& o) { o.median = 4; }), "median"},
      {message([](TissueOptions& o) { o.median = 0; }), "median"},
      {message([](TissueOptions& o) { o.threshold = 255; }), "threshold"},
      {message([](TissueOptions& o) { o.threshold = -2; }), "threshold"},
      {message([](TissueOptions& o) { o.close_radius = -1; }), "close_radius"},
      {message([](TissueOptions& o) { o.min_tissue_area_mm2 = -0.5; }), "min_tissue_area"},
      {message([](TissueOptions& o) { o.min_tissue_area_mm2 = std::nan(""); }), "min_tissue_area"},
      {message([](TissueOptions& o) { o.min_hole_area_mm2 = -1; }), "min_hole_area"},
      {message([](TissueOptions& o) { o.max_holes = -1; }), "max_holes"},
  };
  for (const auto& [text, option] : cases) {
    CAPTURE(text);
    CHECK(text.find(option) != std::string::npos);
    CHECK(text.find('\n') == std::string::npos);
  }
  CHECK_THROWS_AS(segment_tissue(thumb_from({"#"}), 0, 1, 1, TissueOptions{}), std::invalid_argument);
  CHECK_THROWS_AS(segment_tissue(thumb_from({"#"}), 1, 1, -1, TissueOptions{}), std::invalid_argument);
}

namespace {

// A random "slide": white glass with noise, tissue-coloured ellipses (some with white holes and
// white islands of tissue inside those), blue pen strokes and black specks.
RgbImage random_blobs(int W, int H, uint32_t seed, int blobs) {
  std::mt19937 rng(seed);
  auto uniform = [&](int lo, int hi) { return lo + int(rng() % uint32_t(hi - lo + 1)); };
  RgbImage img(W, H);
  for (size_t i = 0; i < img.pixel_count(); ++i) {  // glass: light grey, green jittered
    const int v = uniform(232, 255);
    img.set(int(i % W), int(i / W), uint8_t(v), uint8_t(std::min(255, v + uniform(-3, 3))), uint8_t(v));
  }
  auto ellipse = [&](double cx, double cy, double rx, double ry, auto paint) {
    for (int y = std::max(0, int(cy - ry)); y <= std::min(H - 1, int(cy + ry)); ++y)
      for (int x = std::max(0, int(cx - rx)); x <= std::min(W - 1, int(cx + rx)); ++x)
        if ((x - cx) * (x - cx) / (rx * rx) + (y - cy) * (y - cy) / (ry * ry) <= 1) paint(x, y);
  };
  auto tissue = [&](int x, int y) { img.set(x, y, uint8_t(uniform(150, 230)), uint8_t(uniform(60, 140)), uint8_t(uniform(120, 200))); };
  auto glass = [&](int x, int y) { img.set(x, y, 250, 250, 250); };
  const double scale = std::min(W, H) / 8.0;
  for (int b = 0; b < blobs; ++b) {
    const double cx = uniform(0, W - 1), cy = uniform(0, H - 1);
    const double rx = scale * (0.1 + (rng() % 1000) / 1000.0), ry = scale * (0.1 + (rng() % 1000) / 1000.0);
    ellipse(cx, cy, rx, ry, tissue);
    if (rng() % 2) {
      ellipse(cx, cy, rx * 0.5, ry * 0.5, glass);
      if (rng() % 2) ellipse(cx, cy, rx * 0.2, ry * 0.2, tissue);
    }
  }
  for (int s = 0; s < blobs / 4; ++s) {  // pen strokes and black specks
    const int x0 = uniform(0, W - 1), y0 = uniform(0, H - 1), len = uniform(5, int(2 * scale) + 5);
    for (int t = 0; t < len && x0 + t < W; ++t) img.set(x0 + t, std::min(H - 1, y0 + t / 3), 40, 90, 200);
    ellipse(uniform(0, W - 1), uniform(0, H - 1), 2, 2, [&](int x, int y) { img.set(x, y, 10, 10, 12); });
  }
  return img;
}

// Pixels whose centre is inside the rings of all regions under the even-odd rule.
Mask rasterize(const std::vector<TissueRegion>& regions, int W, int H) {
  Mask toggles(W + 1, H);
  auto add = [&](const Ring& ring) {
    for (size_t i = 0; i < ring.size(); ++i) {
      const auto& a = ring[i];
      const auto& b = ring[(i + 1) % ring.size()];
      if (a[0] != b[0]) continue;  // horizontal edges do not cross a row's centre line
      for (int y = int(std::min(a[1], b[1])); y < int(std::max(a[1], b[1])); ++y) toggles.at(int(a[0]), y) ^= 1;
    }
  };
  for (const auto& r : regions) {
    add(r.outer);
    for (const auto& h : r.holes) add(h);
  }
  Mask out(W, H);
  for (int y = 0; y < H; ++y) {
    uint8_t parity = 0;
    for (int x = 0; x < W; ++x) out.at(x, y) = parity ^= toggles.at(x, y);
  }
  return out;
}

// Every edge axis-aligned, every vertex a turn.
bool rectilinear_without_collinear_corners(const Ring& ring) {
  for (size_t i = 0, n = ring.size(); i < n; ++i) {
    const auto &a = ring[i], &b = ring[(i + 1) % n], &c = ring[(i + 2) % n];
    const bool ab_horizontal = a[1] == b[1] && a[0] != b[0], ab_vertical = a[0] == b[0] && a[1] != b[1];
    if (!(ab_horizontal || ab_vertical) || ab_horizontal == (b[1] == c[1])) return false;
  }
  return ring.size() >= 4;
}

std::vector<uint8_t> read_bytes(const fs::path& p) {
  const std::string s = lm::test::read_text(p);
  return std::vector<uint8_t>(s.begin(), s.end());
}

// Same grouping of pixels, whatever the label numbers.
bool same_partition(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  if (a.size() != b.size()) return false;
  std::map<int32_t, int32_t> a_to_b, b_to_a;
  for (size_t i = 0; i < a.size(); ++i) {
    if ((a[i] == 0) != (b[i] == 0)) return false;
    if (a[i] == 0) continue;
    if (a_to_b.emplace(a[i], b[i]).first->second != b[i]) return false;
    if (b_to_a.emplace(b[i], a[i]).first->second != a[i]) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("tissue: segment_tissue invariants on random blob images") {
  int with_holes = 0, nested = 0;
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    const int W = 120 + int(seed) * 13, H = 90 + int(seed) * 7;
    const RgbImage img = random_blobs(W, H, seed, 12);
    for (int variant = 0; variant < 3; ++variant) {
      TissueOptions o;
      o.median = variant == 0 ? 1 : 5, o.close_radius = variant, o.keep_pen = variant == 2;
      o.channel = variant == 1 ? "otsu-grey" : "saturation";
      o.min_tissue_area_mm2 = variant == 0 ? 0 : 40, o.min_hole_area_mm2 = variant == 0 ? 0 : 6;
      o.max_holes = variant == 0 ? INT_MAX : 2;
      CAPTURE(seed);
      CAPTURE(variant);
      const TissueResult r = segment_tissue(img, 1000, 1000, 1, o);  // 1 pixel = 1 mm^2
      CHECK(r.threshold >= 0);
      CHECK(rasterize(r.regions, W, H).v == r.mask.v);
      double total = 0;
      for (const auto& region : r.regions) {
        CHECK(rectilinear_without_collinear_corners(region.outer));
        double area = signed_area(region.outer);
        CHECK(area > 0);
        for (const auto& hole : region.holes) {
          CHECK(rectilinear_without_collinear_corners(hole));
          CHECK(signed_area(hole) <= -o.min_hole_area_mm2);
          area += signed_area(hole);
        }
        CHECK(int(region.holes.size()) <= o.max_holes);
        CHECK(region.area_mm2 == area);
        CHECK(region.area_mm2 >= o.min_tissue_area_mm2);
        total += region.area_mm2;
        with_holes += !region.holes.empty();
      }
      CHECK(r.tissue_area_mm2 == total);
      CHECK(double(r.mask.count()) == total);
      for (const auto& outside : r.regions)  // regions whose first pixel lies inside another's outline
        for (const auto& inside : r.regions)
          nested += rasterize({TissueRegion{outside.outer, {}, 0}}, W, H).at(int(inside.outer[0][0]), int(inside.outer[0][1])) &&
                    &inside != &outside;
      if (variant == 0) {  // nothing dropped or filled: the mask is the closed thresholded mask
        const auto channel = saturation_channel(img);
        const auto filtered = median_filter(channel, W, H, o.median);
        const int T = otsu_threshold(histogram256(filtered));
        CHECK(r.threshold == T);
        Mask raw(W, H);
        for (size_t i = 0; i < raw.v.size(); ++i) {
          const uint8_t* p = &img.rgb[3 * i];
          raw.v[i] = filtered[i] > T && std::max({p[0], p[1], p[2]}) >= 30 && std::min({p[0], p[1], p[2]}) <= 220 &&
                     int(p[1]) - int(p[0]) <= 20;
        }
        CHECK(close_square(raw, o.close_radius).v == r.mask.v);
      }
    }
  }
  CHECK((with_holes > 0 && nested > 0));  // the images do exercise holes and regions in holes
}

TEST_CASE("tissue: primitives match scipy and scikit-image on random images") {
  const fs::path dir = lm::test::scratch_dir("tissue_primitives");
  struct Case { std::string name; int w, h, k, r; std::vector<uint8_t> img, mask; };
  const std::vector<std::pair<int, int>> sizes = {{1, 1}, {1, 37}, {29, 1}, {2, 2},  {5, 7},
                                                  {3, 50}, {17, 13}, {64, 48}, {97, 61}, {130, 200}};
  const int ks[] = {1, 3, 5, 7, 9, 11, 15}, rs[] = {0, 1, 2, 3, 5};
  std::mt19937 rng(2024);
  std::vector<Case> cases;
  std::ofstream list(dir / "cases.txt");
  for (size_t s = 0; s < sizes.size(); ++s)
    for (int variant = 0; variant < 3; ++variant) {
      Case c{"c" + std::to_string(s) + "_" + std::to_string(variant), sizes[s].first, sizes[s].second,
             ks[(s + 2 * variant) % 7], rs[(s + variant) % 5], {}, {}};
      const size_t n = size_t(c.w) * size_t(c.h);
      c.img.resize(n), c.mask.resize(n);
      const uint32_t density = 30 + 20 * uint32_t(variant);  // percent of ones in the mask
      for (size_t i = 0; i < n; ++i) {
        const int x = int(i % c.w), y = int(i / c.w);
        c.img[i] = variant == 0   ? uint8_t(rng() % 256)                                             // uniform
                   : variant == 1 ? uint8_t(rng() % 4)                                               // few levels, ties
                                  : uint8_t(((x / 7 + y / 5) % 2 ? 180 : 40) + int(rng() % 31) - 15);  // bimodal
        c.mask[i] = rng() % 100 < density;
      }
      std::ofstream(dir / (c.name + ".img"), std::ios::binary).write((const char*)c.img.data(), std::streamsize(n));
      std::ofstream(dir / (c.name + ".mask"), std::ios::binary).write((const char*)c.mask.data(), std::streamsize(n));
      list << c.name << ' ' << c.w << ' ' << c.h << ' ' << c.k << ' ' << c.r << '\n';
      cases.push_back(std::move(c));
    }
  list.close();
  lm::test::run_python_tool("tissue_primitives_reference.py", dir.string() + " > " + (dir / "log.txt").string() + " 2>&1");
  int skimage_agrees = 0, float_agrees = 0;
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const fs::path base = dir / c.name;
    CHECK(median_filter(c.img, c.w, c.h, c.k) == read_bytes(base.string() + ".median"));
    Mask mask(c.w, c.h);
    mask.v = c.mask;
    CHECK(close_square(mask, c.r).v == read_bytes(base.string() + ".close"));
    for (int conn : {4, 8}) {
      const std::vector<uint8_t> raw = read_bytes(base.string() + ".label" + std::to_string(conn));
      std::vector<int32_t> reference(raw.size() / 4);
      std::memcpy(reference.data(), raw.data(), raw.size());
      CHECK(same_partition(label_components(mask, conn).labels, reference));
    }
    std::ifstream otsu(base.string() + ".otsu");
    int exact = -2, in_float = -2, skimage = -2;
    otsu >> exact >> in_float >> skimage;
    CHECK(otsu_threshold(histogram256(c.img)) == exact);
    skimage_agrees += skimage == exact, float_agrees += in_float == exact;
  }
  // scikit-image's threshold_otsu is the same rule in float64 (first maximum, class 0 <= T) and
  // agrees on all of these; a float near-tie could in principle split them.
  CHECK(skimage_agrees == int(cases.size()));
  CHECK(float_agrees == int(cases.size()));
}
