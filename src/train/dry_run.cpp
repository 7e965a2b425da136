// strata train --dry-run (trainer.hpp): the engine plan of any rank of a job, from the config
// alone.
#include <sstream>

#include "strata/comm/rank_grid.hpp"
#include "strata/config/batch.hpp"
#include "strata/config/capabilities.hpp"
#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/parallel/engine.hpp"
#include "strata/train/trainer.hpp"

namespace strata::train {

std::string dry_run(const config::JobConfig& job, int ranks, int rank) {
  const config::ParallelConfig& p = job.parallel;
  const int world = ranks > 0 ? ranks : p.tp * p.pp * p.cp * std::max(1, p.dp);
  const comm::GridShape shape = comm::resolve_grid(world, p.tp, p.pp, p.dp, p.cp);
  STRATA_CHECK(rank >= 0 && rank < shape.size(), "--rank ", rank, " is outside the job's ", shape.size(),
               " ranks");
  // The support statement was consulted when the config was validated (config::validate).
  config::validate(job);
  const config::BatchShape batch = config::resolve_batch(p, shape.dp);
  const model::BackendSpec spec = parallel::backend_spec(job.hardware.device);
  std::ostringstream os;
  os << "dry run of " << (job.source.empty() ? "the job" : job.source) << ": " << shape.size()
     << " ranks = tp " << shape.tp << " x pp " << shape.pp << " x dp " << shape.dp
     << (shape.cp > 1 ? " x cp " + std::to_string(shape.cp) : std::string()) << ", hardware.device "
     << config::to_string(job.hardware.device) << " (" << config::backend_support(job.hardware.device).name
     << ")\n"
     << "batch: " << batch.global << " sequences x " << job.train.seq_len << " tokens per step; micro-batch "
     << batch.micro << ", " << batch.microbatches << " micro-batches per DP rank\n"
     << "every setting runs on this backend\n"
     << "memory per rank, by pipeline stage (tp rank 0, dp rank 0):\n";
  for (int s = 0; s < shape.pp; ++s) {
    const parallel::EnginePlan e = parallel::plan_engine(job.model, p, job.optim, job.train.seq_len,
                                                         batch.microbatches, shape, {0, 0, s}, spec);
    os << "  stage " << s << ": parameters and gradients " << format_bytes(double(e.parameter_bytes()))
       << ", optimizer " << format_bytes(double(e.optimizer_bytes())) << ", activations and work space "
       << format_bytes(double(e.activation_bytes())) << " = " << format_bytes(double(e.device_bytes()))
       << (spec.device == Device::cuda ? " of device memory" : "") << " (host staging "
       << format_bytes(double(e.host.total_bytes())) << ")\n";
  }
  const comm::GridCoord c = comm::coord_of(shape, rank);
  os << "rank " << rank << ":\n"
     << parallel::plan_engine(job.model, p, job.optim, job.train.seq_len, batch.microbatches, shape, c, spec)
            .describe();
  return os.str();
}

}  // namespace strata::train
