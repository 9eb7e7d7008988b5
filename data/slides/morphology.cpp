// The image primitives of the tissue segmentation: channels, median filter, Otsu, closing,
// component labelling and boundary tracing. See morphology.h.
#include "data/slides/morphology.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace lm::slides {

namespace {

void check_image(const char* fn, int width, int height, size_t values, size_t per_pixel) {
  if (width < 0 || height < 0)
    throw std::invalid_argument(std::string(fn) + ": negative image size " + std::to_string(width) + " x " +
                                std::to_string(height));
  if (values != size_t(width) * size_t(height) * per_pixel)
    throw std::invalid_argument(std::string(fn) + ": " + std::to_string(values) + " values for a " +
                                std::to_string(width) + " x " + std::to_string(height) + " image");
}

// Integral image of a mask's non-zero pixels: sums[(y) * (W + 1) + x] counts the pixels in
// columns < x of rows < y.
std::vector<uint32_t> integral_image(const Mask& mask) {
  const size_t W = size_t(mask.width), H = size_t(mask.height);
  std::vector<uint32_t> sums((W + 1) * (H + 1), 0);
  for (size_t y = 0; y < H; ++y) {
    uint32_t row = 0;
    const uint8_t* src = &mask.v[y * W];
    uint32_t* above = &sums[y * (W + 1)];
    uint32_t* here = &sums[(y + 1) * (W + 1)];
    for (size_t x = 0; x < W; ++x) {
      row += src[x] != 0;
      here[x + 1] = above[x + 1] + row;
    }
  }
  return sums;
}

// Max (dilate) or min (erode) of a binary mask over the clipped square: the count of ones in the
// clipped window is > 0 or equals the window's size.
Mask square_filter(const Mask& mask, int radius, bool dilate) {
  if (radius < 0) throw std::invalid_argument("square filter: radius must be >= 0, got " + std::to_string(radius));
  check_image("square filter", mask.width, mask.height, mask.v.size(), 1);
  Mask out(mask.width, mask.height);
  const int W = mask.width, H = mask.height;
  if (size_t(W) * size_t(H) >= (size_t(1) << 32))
    throw std::invalid_argument("square filter: image too large");
  if (radius == 0) {
    for (size_t i = 0; i < mask.v.size(); ++i) out.v[i] = mask.v[i] != 0;
    return out;
  }
  const std::vector<uint32_t> sums = integral_image(mask);
  const size_t stride = size_t(W) + 1;
  for (int y = 0; y < H; ++y) {
    const int y0 = std::max(y - radius, 0), y1 = std::min(y + radius, H - 1) + 1;
    for (int x = 0; x < W; ++x) {
      const int x0 = std::max(x - radius, 0), x1 = std::min(x + radius, W - 1) + 1;
      const uint32_t ones = sums[y1 * stride + x1] - sums[y0 * stride + x1] - sums[y1 * stride + x0] +
                            sums[y0 * stride + x0];
      const uint32_t window = uint32_t(y1 - y0) * uint32_t(x1 - x0);
      out.v[size_t(y) * W + x] = dilate ? ones > 0 : ones == window;
    }
  }
  return out;
}

}  // namespace

std::vector<uint8_t> saturation_channel(const RgbImage& image) {
  check_image("saturation_channel", image.width, image.height, image.rgb.size(), 3);
  std::vector<uint8_t> out(image.pixel_count());
  for (size_t i = 0; i < out.size(); ++i) {
    const int r = image.rgb[3 * i], g = image.rgb[3 * i + 1], b = image.rgb[3 * i + 2];
    const int v = std::max({r, g, b}), n = std::min({r, g, b});
    out[i] = uint8_t(v == 0 ? 0 : (510 * (v - n) + v) / (2 * v));
  }
  return out;
}

std::vector<uint8_t> inverted_grey_channel(const RgbImage& image) {
  check_image("inverted_grey_channel", image.width, image.height, image.rgb.size(), 3);
  std::vector<uint8_t> out(image.pixel_count());
  for (size_t i = 0; i < out.size(); ++i) {
    const int r = image.rgb[3 * i], g = image.rgb[3 * i + 1], b = image.rgb[3 * i + 2];
    out[i] = uint8_t(255 - (299 * r + 587 * g + 114 * b + 500) / 1000);
  }
  return out;
}

std::vector<uint8_t> median_filter(const std::vector<uint8_t>& channel, int width, int height, int k) {
  check_image("median_filter", width, height, channel.size(), 1);
  if (k < 1 || k % 2 == 0)
    throw std::invalid_argument("median_filter: window size must be odd and >= 1, got " + std::to_string(k));
  if (width == 0 || height == 0 || k == 1) return channel;
  const int radius = k / 2;
  // The image with `radius` replicated edge pixels on every side, so that the loops need no clamping.
  const size_t pad_w = size_t(width) + 2 * size_t(radius), pad_h = size_t(height) + 2 * size_t(radius);
  std::vector<uint8_t> padded(pad_w * pad_h);
  for (size_t py = 0; py < pad_h; ++py) {
    const int sy = std::clamp(int(py) - radius, 0, height - 1);
    const uint8_t* src = &channel[size_t(sy) * width];
    uint8_t* dst = &padded[py * pad_w];
    for (size_t px = 0; px < pad_w; ++px) dst[px] = src[std::clamp(int(px) - radius, 0, width - 1)];
  }
  // Huang: per row, a histogram of the k x k window slides right one column at a time; the
  // median `med` and `below` (the count of window values < med) are nudged after each step.
  // The median is the value of rank `half` (0-based) among the k*k values.
  const int64_t half = (int64_t(k) * k) / 2;
  std::vector<uint8_t> out(channel.size());
  int64_t hist[256];
  for (int y = 0; y < height; ++y) {
    std::fill(hist, hist + 256, 0);
    for (int dy = 0; dy < k; ++dy)
      for (int dx = 0; dx < k; ++dx) ++hist[padded[(size_t(y) + dy) * pad_w + dx]];
    int med = 0;
    int64_t below = 0;
    while (below + hist[med] <= half) below += hist[med++];
    out[size_t(y) * width] = uint8_t(med);
    for (int x = 1; x < width; ++x) {
      const uint8_t* leaving = &padded[size_t(y) * pad_w + size_t(x) - 1];
      const uint8_t* entering = leaving + k;
      for (int dy = 0; dy < k; ++dy, leaving += pad_w, entering += pad_w) {
        --hist[*leaving];
        below -= *leaving < med;
        ++hist[*entering];
        below += *entering < med;
      }
      if (below > half) {
        do below -= hist[--med];
        while (below > half);
      } else {
        while (below + hist[med] <= half) below += hist[med++];
      }
      out[size_t(y) * width + x] = uint8_t(med);
    }
  }
  return out;
}

Histogram histogram256(const std::vector<uint8_t>& values) {
  Histogram h{};
  for (uint8_t v : values) ++h[v];
  return h;
}

int otsu_threshold(const Histogram& histogram) {
  int64_t total = 0, total_sum = 0;
  for (int v = 0; v < 256; ++v) {
    if (histogram[v] < 0) throw std::invalid_argument("otsu_threshold: negative count in bin " + std::to_string(v));
    total += histogram[v];
    if (total >= (int64_t(1) << 28))
      throw std::invalid_argument("otsu_threshold: total count must be below 2^28 for exact comparison");
    total_sum += int64_t(v) * histogram[v];
  }
  // Maximise D^2 / (n0 n1) with D = N S0 - n0 S (|D| < 255 N^2 < 2^64, so D^2 fits in 128 bits).
  // a/b > c/d is decided by integer quotients, then remainders cross-multiplied (< 2^112).
  using u128 = unsigned __int128;
  int best = -1;
  u128 best_num = 0;
  uint64_t best_den = 1;
  int64_t n0 = 0, s0 = 0;
  for (int t = 0; t < 255; ++t) {
    n0 += histogram[t];
    s0 += int64_t(t) * histogram[t];
    const int64_t n1 = total - n0;
    if (n0 == 0 || n1 == 0) continue;
    const __int128 d = __int128(total) * s0 - __int128(n0) * total_sum;
    const u128 mag = u128(d < 0 ? -d : d);
    const u128 num = mag * mag;
    const uint64_t den = uint64_t(n0) * uint64_t(n1);
    bool greater;
    if (best < 0) {
      greater = true;
    } else {
      const u128 q = num / den, q_best = best_num / best_den;
      if (q != q_best) {
        greater = q > q_best;
      } else {
        const u128 r = num % den, r_best = best_num % best_den;
        greater = r * best_den > r_best * den;
      }
    }
    if (greater) best = t, best_num = num, best_den = den;
  }
  return best;
}

Mask dilate_square(const Mask& mask, int radius) { return square_filter(mask, radius, true); }
Mask erode_square(const Mask& mask, int radius) { return square_filter(mask, radius, false); }
Mask close_square(const Mask& mask, int radius) { return erode_square(dilate_square(mask, radius), radius); }

Mask invert(const Mask& mask) {
  Mask out(mask.width, mask.height);
  for (size_t i = 0; i < mask.v.size(); ++i) out.v[i] = mask.v[i] == 0;
  return out;
}

Components label_components(const Mask& mask, int connectivity) {
  if (connectivity != 4 && connectivity != 8)
    throw std::invalid_argument("label_components: connectivity must be 4 or 8, got " + std::to_string(connectivity));
  check_image("label_components", mask.width, mask.height, mask.v.size(), 1);
  if (mask.v.size() >= size_t(INT32_MAX)) throw std::invalid_argument("label_components: image too large");
  const int W = mask.width, H = mask.height;
  Components c;
  c.width = W, c.height = H;
  c.labels.assign(mask.v.size(), 0);
  c.sizes = {0};
  c.first_pixel = {-1};
  static const int kOffsets[8][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}, {1, 1}, {-1, 1}, {1, -1}, {-1, -1}};
  std::vector<int32_t> stack;
  int64_t labelled = 0;
  for (int32_t start = 0; start < int32_t(mask.v.size()); ++start) {
    if (mask.v[start] == 0 || c.labels[start] != 0) continue;
    const int32_t label = ++c.count;
    c.labels[start] = label;
    stack.push_back(start);
    int64_t size = 0;
    while (!stack.empty()) {
      const int32_t p = stack.back();
      stack.pop_back();
      ++size;
      const int px = p % W, py = p / W;
      for (int n = 0; n < connectivity; ++n) {
        const int qx = px + kOffsets[n][0], qy = py + kOffsets[n][1];
        if (qx < 0 || qy < 0 || qx >= W || qy >= H) continue;
        const int32_t q = qy * W + qx;
        if (mask.v[q] != 0 && c.labels[q] == 0) {
          c.labels[q] = label;
          stack.push_back(q);
        }
      }
    }
    c.sizes.push_back(size);
    c.first_pixel.push_back(start);
    labelled += size;
  }
  c.sizes[0] = int64_t(mask.v.size()) - labelled;
  return c;
}

Ring trace_boundary(const Components& components, int32_t label, BoundaryKind kind) {
  if (label < 1 || label > components.count)
    throw std::invalid_argument("trace_boundary: no component " + std::to_string(label));
  const int W = components.width, H = components.height;
  const int64_t first = components.first_pixel[label];
  const int x0 = int(first % W), y0 = int(first / W);
  const bool outer = kind == BoundaryKind::outer;
  // "Tissue" is what the walker keeps on its right: the component itself for an outer boundary,
  // everything but the component (the region around the hole) for a hole. Outside is not the
  // component.
  auto tissue = [&](int x, int y) {
    const bool in = x >= 0 && y >= 0 && x < W && y < H && components.labels[size_t(y) * W + x] == label;
    return in == outer;
  };
  // Headings in screen order (y down): 0 east, 1 south, 2 west, 3 north; turning right is +1.
  static const int kMove[4][2] = {{1, 0}, {0, 1}, {-1, 0}, {0, -1}};
  // The two pixels ahead of a corner (x, y) for each heading, as offsets from (x, y): the one
  // on the walker's left and the one on its right (pixel (i, j) spans [i, i+1] x [j, j+1]).
  static const int kAheadLeft[4][2] = {{0, -1}, {0, 0}, {-1, 0}, {-1, -1}};
  static const int kAheadRight[4][2] = {{0, 0}, {-1, 0}, {-1, -1}, {0, -1}};
  // Outer: along the top edge of the first pixel, eastwards. Hole: down its left edge (the pixels
  // above and to the left of a component's first pixel are not in it, so its top-left corner is
  // a convex corner and a vertex in both cases).
  const int start_heading = outer ? 0 : 1;
  Ring ring;
  ring.push_back({double(x0), double(y0)});
  int x = x0, y = y0, heading = start_heading;
  const int64_t max_steps = 4 * (int64_t(W) + 1) * (int64_t(H) + 1) + 4;
  for (int64_t step = 0;; ++step) {
    if (step > max_steps) throw std::logic_error("trace_boundary: walk did not close");
    x += kMove[heading][0], y += kMove[heading][1];
    // Tissue ahead-left: turn left (at a corner where tissue pixels touch diagonally, this keeps
    // them connected: tissue is 8-connected, its complement 4-connected). Else tissue
    // ahead-right: straight on. Else: turn right.
    int next;
    if (tissue(x + kAheadLeft[heading][0], y + kAheadLeft[heading][1]))
      next = (heading + 3) % 4;
    else if (tissue(x + kAheadRight[heading][0], y + kAheadRight[heading][1]))
      next = heading;
    else
      next = (heading + 1) % 4;
    if (x == x0 && y == y0 && next == start_heading) break;
    if (next != heading) ring.push_back({double(x), double(y)});
    heading = next;
  }
  return ring;
}

double signed_area(const Ring& ring) {
  double twice = 0;
  for (size_t i = 0; i < ring.size(); ++i) {
    const auto& a = ring[i];
    const auto& b = ring[(i + 1) % ring.size()];
    twice += a[0] * b[1] - b[0] * a[1];
  }
  return twice / 2;
}

}  // namespace lm::slides
