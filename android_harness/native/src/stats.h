// Latency statistics with NumPy's definitions (linear-interpolated percentiles, population std),
// so the native runner's numbers mean what mobiledr.bench.worker's mean.
#pragma once

#include <vector>

namespace mobiledr {

struct LatencyStats {
  double mean, std, min, p50, p90, p99, max, cv;
};

LatencyStats latency_stats(std::vector<double> milliseconds);

}  // namespace mobiledr
