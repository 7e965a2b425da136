// The per-rank peak FLOP/s that MFU is measured against, and MFU itself.
//
// Where the peak comes from, first match wins:
//   1. hardware.peak_tflops             per rank, as configured
//   2. hardware.cluster                 the cluster file's peak for the job's precision, per rank:
//                                       on GPUs the accelerator's; on CPUs the node's
//                                       (peak x gpus_per_node) shared by the ranks on the host
//   3. GPU (device_name not empty)      the device's dense bf16 peak (kernels/gpu_peaks.hpp)
//   4. CPU                              the host's fp32 FMA peak, measured once per host and
//                                       shared by the ranks on that host
//
// "Host" is one operating-system instance: the ranks whose /proc/sys/kernel/random/boot_id
// (else hostname) is the same. Ranks on one host share its cores, also when Slurm presents the
// host as several nodes (slurmd -N node1..nodeK on one machine), so they share its peak.
// Measured once per host: the lowest global rank of each host runs the FMA probe on the cores
// it may use (its CPU affinity) while the host's other ranks sleep in a polled all-gather, so
// the probe does not compete with them (measuring on every rank at once made each rank see a
// fraction of the machine and report MFU far above 100%). Hosts measure at the same time: they
// are different machines. A rank's share of the host is min(a, c / r) of the probe's a cores,
// for c cores on the host and r ranks there: c / r when the ranks float over the host, a when
// each rank is bound to its own a cores.
//
// MFU = achieved model TFLOP/s per rank / peak per rank. It cannot exceed 1 with a right peak;
// a value above 1 means the peak is too low (a probe disturbed by other work, a cluster file
// for other hardware). Then MFU is not reported (0) from that step on, and one warning names
// the peak's source and how to set hardware.peak_tflops.
#pragma once
#include <string>

#include "strata/config/config.hpp"

namespace strata::comm {
class RankGrid;
}

namespace strata::train {

class PeakFlops {
 public:
  PeakFlops() = default;
  PeakFlops(double tflops_per_rank, std::string source, bool warn);

  double tflops_per_rank() const { return tflops_per_rank_; }  // 0: unknown, MFU not reported
  const std::string& source() const { return source_; }        // for the start-up line and warnings
  int ranks_on_host = 1;                                       // ranks sharing this rank's host
  int host_lead = 0;  // the global rank that measured (or would have measured) the host's peak

  // tflops / peak, or 0 when the peak is unknown or once a step has exceeded it (then a
  // warning is logged once, by the instance built with warn = true).
  double mfu(double tflops);
  bool exceeded() const { return exceeded_; }

 private:
  double tflops_per_rank_ = 0;
  std::string source_;
  bool warn_ = false;
  bool exceeded_ = false;
};

// Collective over the grid's world (every rank calls it). `device_name`: the GPU's name as
// CUDA reports it, "" on CPU. The returned object warns (mfu()) on global rank 0 only.
PeakFlops resolve_peak_flops(const config::HardwareConfig& hardware, comm::RankGrid& grid,
                             const std::string& device_name = "");

// The pieces, for tests: this host's key (boot id, else hostname), and the share rule above.
std::string host_key();
double rank_share_of_probe(double probe_tflops, int probe_cores, int host_cores, int ranks_on_host);

}  // namespace strata::train
