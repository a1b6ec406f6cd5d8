#include "stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mobiledr {
namespace {

double percentile(const std::vector<double>& sorted, double q) {  // numpy.percentile, method="linear"
  const double rank = q / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t low = static_cast<size_t>(std::floor(rank));
  const size_t high = std::min(low + 1, sorted.size() - 1);
  return sorted[low] + (rank - static_cast<double>(low)) * (sorted[high] - sorted[low]);
}

}  // namespace

LatencyStats latency_stats(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  const double n = static_cast<double>(ms.size());
  const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / n;
  double squares = 0.0;
  for (double v : ms) squares += (v - mean) * (v - mean);
  const double std = std::sqrt(squares / n);
  return {mean, std, ms.front(), percentile(ms, 50), percentile(ms, 90), percentile(ms, 99), ms.back(), mean > 0 ? std / mean : 0.0};
}

}  // namespace mobiledr
