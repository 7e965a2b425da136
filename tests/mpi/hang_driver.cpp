// A job in which one rank skips a collective, for tests/mpi/hang_report.sh (run on 8 ranks):
// a tp2 x pp2 x dp2 grid whose watchdog times out after argv[1] seconds. Every rank runs a few
// all-reduces on each of its groups, as a training step does; then global rank 5
// (tp 1, dp 0, pp 1) skips the dp all-reduce that its dp peer, global rank 7, enters, and every
// rank except 7 waits in a plain MPI_Barrier, which no watchdog guards. Rank 7's watchdog must
// report the stuck collective, name rank 5 as not arrived, and end the job (exit status 1);
// reaching the end of main is a failure (exit status 3).
#include <mpi.h>

#include <cstdio>
#include <cstdlib>

#include "strata/comm/rank_grid.hpp"

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  const double timeout_s = argc > 1 ? std::atof(argv[1]) : 3.0;
  {
    strata::comm::RankGrid grid(MPI_COMM_WORLD, 2, 2, 2, timeout_s);
    double x = 1;
    for (int i = 0; i < 3; ++i) {
      grid.tp_group().all_reduce(&x, 1);
      grid.dp_group().all_reduce(&x, 1);
      grid.pp_group().all_reduce(&x, 1);
    }
    if (grid.global_rank() != 5) grid.dp_group().all_reduce(&x, 1);  // dp all_reduce #4: rank 5 skips it
    MPI_Barrier(MPI_COMM_WORLD);
  }
  std::fprintf(stderr, "hang_driver: the skipped collective did not end the job\n");
  MPI_Finalize();
  return 3;
}
