// The per-rank peak for MFU (train/peak.hpp has the rules and why).
#include "strata/train/peak.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "strata/comm/rank_grid.hpp"
#include "strata/config/cluster.hpp"
#include "strata/core/error.hpp"
#include "strata/core/log.hpp"
#include "strata/kernels/cpu/matmul.hpp"
#include "strata/kernels/cpu/peak.hpp"
#include "strata/kernels/gpu_peaks.hpp"

namespace strata::train {

namespace {

// FNV-1a, 64 bits: the host key travels as one integer.
std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string fmt_tflops(double t) {
  std::ostringstream os;
  os << t * 1e3 << " GFLOP/s";
  return os.str();
}

}  // namespace

std::string host_key() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  if (in && std::getline(in, id) && !id.empty()) return "boot:" + id;
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  return std::string("host:") + name;
}

double rank_share_of_probe(double probe_tflops, int probe_cores, int host_cores, int ranks_on_host) {
  probe_cores = std::max(1, probe_cores);
  const double share =
      std::min(double(probe_cores), double(std::max(1, host_cores)) / std::max(1, ranks_on_host));
  return probe_tflops * share / probe_cores;
}

PeakFlops::PeakFlops(double tflops_per_rank, std::string source, bool warn)
    : tflops_per_rank_(tflops_per_rank), source_(std::move(source)), warn_(warn) {}

double PeakFlops::mfu(double tflops) {
  if (tflops_per_rank_ <= 0 || exceeded_) return 0.0;
  const double m = tflops / tflops_per_rank_;
  if (m <= 1.0) return m;
  exceeded_ = true;
  if (warn_)
    log_warn("MFU would be ", 100.0 * m, "%: the achieved ", fmt_tflops(tflops),
             " per rank exceed the peak of ", fmt_tflops(tflops_per_rank_), " per rank (", source_,
             "), so that peak is too low; MFU is not ",
             "reported from here on (0 in metrics.jsonl). Set the true per-rank peak with --set ",
             "hardware.peak_tflops=<TFLOP/s per rank>, or name the machine's cluster file with --set ",
             "hardware.cluster=<name> (configs/clusters/)");
  return 0.0;
}

PeakFlops resolve_peak_flops(const config::HardwareConfig& hw, comm::RankGrid& grid,
                             const std::string& device_name) {
  const bool lead = grid.global_rank() == 0;
  comm::Communicator& world = grid.world_group();
  const int world_size = grid.world_size();

  // Which ranks share this rank's host (collective; cheap).
  const std::uint64_t key = fnv1a(host_key());
  std::vector<std::uint64_t> keys(std::size_t(world_size), 0);
  world.all_gather(&key, keys.data(), 1, DType::u64);
  int ranks_on_host = 0, host_lead = -1;
  for (int r = 0; r < world_size; ++r) {
    if (keys[std::size_t(r)] != key) continue;
    ++ranks_on_host;
    if (host_lead < 0) host_lead = r;
  }
  const int host_cores = int(std::max(1u, std::thread::hardware_concurrency()));

  auto make = [&](double tflops, std::string source) {
    PeakFlops p(tflops, std::move(source), lead);
    p.ranks_on_host = ranks_on_host;
    p.host_lead = host_lead;
    return p;
  };

  // A core type forced through the environment stands (ensure_blas_environment leaves it), but
  // say so when it is narrower than the CPU: it halves the GEMMs, so the MFU, on AVX-512 CPUs.
  if (lead && hw.device == config::DeviceKind::cpu) {
    if (const char* wider = kernels::cpu::blas_suggested_coretype()) {
      const char* forced = std::getenv("OPENBLAS_CORETYPE");
      log_warn("OpenBLAS runs narrower kernels than this CPU has (", kernels::cpu::blas_name(), ")",
               forced ? std::string(" because OPENBLAS_CORETYPE=") + forced + " is set" : std::string(),
               "; its ", wider,
               " kernels would be faster: unset OPENBLAS_CORETYPE to let strata choose them");
    }
  }

  if (hw.peak_tflops > 0) return make(hw.peak_tflops, "hardware.peak_tflops");

  if (!hw.cluster.empty()) {
    const std::string path = config::find_named_config(hw.cluster, "clusters", "cluster");
    const config::ClusterConfig c = config::load_cluster_config(path);
    const bool gpu = hw.device == config::DeviceKind::cuda;
    const double acc = gpu ? c.peak_tflops_bf16 : c.peak_tflops_fp32;
    if (acc <= 0)
      throw make_error("hardware.cluster: ", path, " gives no ",
                       gpu ? "peak_tflops_bf16" : "peak_tflops_fp32", " (the peak of this job's precision)");
    std::ostringstream src;
    if (gpu) {
      src << "cluster file " << path << ": " << c.gpu << ", " << acc << " TFLOP/s bf16 per accelerator";
      return make(acc, src.str());
    }
    const double node = acc * c.gpus_per_node;
    src << "cluster file " << path << ": " << c.gpu << ", " << node << " TFLOP/s fp32 per node / "
        << ranks_on_host << " ranks on this host";
    return make(node / ranks_on_host, src.str());
  }

  if (!device_name.empty()) {
    std::string entry;
    const double t = kernels::gpu_peak_bf16_tflops(device_name, &entry);
    return make(t, t > 0 ? "dense bf16 peak of the " + entry + " (kernels/gpu_peaks.cpp)"
                         : entry + ": no peak known, MFU not reported (set hardware.peak_tflops)");
  }

  // CPU: the host's lead measures on the cores it may use; the others wait without spinning,
  // so that they leave those cores to the probe.
  const int probe_cores = kernels::cpu::process_cpu_count();
  double mine =
      grid.global_rank() == host_lead ? kernels::cpu::measure_fp32_peak_gflops(probe_cores, 0.3) / 1e3 : 0.0;
  double probe_cores_d = double(probe_cores);
  double sent[2] = {mine, probe_cores_d};
  std::vector<double> all(std::size_t(2 * world_size), 0.0);
  comm::Work w = world.iall_gather(sent, all.data(), 2, DType::f64);
  while (!world.test(w)) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const double probe = all[std::size_t(2 * host_lead)];
  const int lead_cores = int(all[std::size_t(2 * host_lead + 1)]);
  const double per_rank = rank_share_of_probe(probe, lead_cores, host_cores, ranks_on_host);
  std::ostringstream src;
  src << "fp32 FMA peak of this host measured by rank " << host_lead << " on " << lead_cores << " of "
      << host_cores << " cores (" << probe * 1e3 << " GFLOP/s), shared by the " << ranks_on_host
      << " ranks on the host";
  return make(per_rank, src.str());
}

}  // namespace strata::train
