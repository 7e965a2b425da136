#include "strata/model/parameters.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include "strata/core/error.hpp"
#include "strata/core/rng.hpp"

namespace strata::model {

std::int64_t ParamInfo::global_index(std::int64_t i) const {
  if (split == TpSplit::replicated) return i;
  const std::int64_t cols = shape.size() > 1 ? shape[1] : 1;
  const std::int64_t r = i / cols, c = i % cols;
  if (split == TpSplit::rows) return (split_offset + r) * cols + c;
  return r * global_shape[1] + split_offset + c;
}

int padded_vocab(int vocab_size, int tp_size, int multiple) {
  const int m = tp_size * multiple;
  return (vocab_size + m - 1) / m * m;
}

std::int64_t ParameterTable::add(ParamInfo p) {
  p.numel = shape_numel(p.shape);
  p.offset = numel_;
  numel_ += p.numel;
  entries_.push_back(std::move(p));
  return entries_.back().offset;
}

const ParamInfo* ParameterTable::find(const std::string& name) const {
  for (const auto& p : entries_)
    if (p.name == name) return &p;
  return nullptr;
}

const ParamInfo& ParameterTable::get(const std::string& name) const {
  if (const ParamInfo* p = find(name)) return *p;
  throw make_error("no parameter named '", name, "'");
}

std::int64_t ParameterTable::matmul_numel() const {
  std::int64_t n = 0;
  for (const auto& p : entries_)
    if (p.in_matmul) n += p.numel;
  return n;
}

std::pair<std::int64_t, std::int64_t> ParameterTable::layer_range(int layer) const {
  const std::string prefix = "layers." + std::to_string(layer) + ".";
  std::pair<std::int64_t, std::int64_t> r{-1, -1};
  for (const auto& p : entries_)
    if (p.name.rfind(prefix, 0) == 0) {
      if (r.first < 0) r.first = p.offset;
      r.second = p.offset + p.numel;
    }
  return r;
}

namespace {
std::string layer_name(int l, const char* rest) { return "layers." + std::to_string(l) + "." + rest; }
}  // namespace

ParameterTable make_parameter_table(const config::ModelConfig& cfg, const ChunkPlacement& place) {
  const int tp = place.tp_size, r = place.tp_rank;
  const std::int64_t C = cfg.d_model, F = cfg.ffn();
  const std::int64_t HS = cfg.head_size(), Q = cfg.num_heads * HS, KV = cfg.kv_heads() * HS;
  const std::int64_t V = cfg.vocab_size, Vp = padded_vocab(cfg.vocab_size, tp, place.vocab_multiple),
                     Vl = Vp / tp;
  const double std0 = cfg.init_std;
  // GPT-2: residual-branch output projections scaled by 1/sqrt(2 L) so the residual stream's
  // variance does not grow with depth (Radford et al. 2019, section 2.3).
  const double std_out = cfg.init_std / std::sqrt(2.0 * cfg.num_layers);
  const bool ln = cfg.norm == config::NormKind::layernorm;
  const bool sp = place.sequence_parallel && tp > 1;
  ParameterTable t;
  auto replicated = [&](std::string name, std::int64_t n, ParamKind kind) {
    ParamInfo p;
    p.name = std::move(name);
    p.shape = p.global_shape = {n};
    p.kind = kind;
    p.grad_needs_tp_sum = sp;
    p.counts_in_norm = r == 0;
    return t.add(std::move(p));
  };
  // Column-parallel: Y = X A + b with A's output dimension (our weight's rows) split.
  // Each adder sets the weight's and the bias's offsets (w, b; the bias stays -1 without one).
  auto column = [&](const std::string& name, std::int64_t out, std::int64_t in, double sd, std::int64_t& w_at,
                    std::int64_t& b_at) {
    ParamInfo w;
    w.name = name + ".weight";
    w.global_shape = {out, in};
    w.shape = {out / tp, in};
    w.split = TpSplit::rows;
    w.split_offset = r * (out / tp);
    w.init_std = sd;
    w.in_matmul = true;
    w_at = t.add(w);
    if (cfg.bias) {
      ParamInfo b;
      b.name = name + ".bias";
      b.global_shape = {out};
      b.shape = {out / tp};
      b.split = TpSplit::rows;
      b.split_offset = r * (out / tp);
      b.kind = ParamKind::bias;
      b_at = t.add(b);
    }
  };
  // Row-parallel: Y = X A + b with A's input dimension (our weight's columns) split; the
  // bias is added once, after the reduction, so it is replicated.
  auto row = [&](const std::string& name, std::int64_t out, std::int64_t in, double sd, std::int64_t& w_at,
                 std::int64_t& b_at) {
    ParamInfo w;
    w.name = name + ".weight";
    w.global_shape = {out, in};
    w.shape = {out, in / tp};
    w.split = TpSplit::cols;
    w.split_offset = r * (in / tp);
    w.init_std = sd;
    w.in_matmul = true;
    w_at = t.add(w);
    if (cfg.bias) b_at = replicated(name + ".bias", out, ParamKind::bias);
  };
  auto norm = [&](const std::string& name, std::int64_t& w_at, std::int64_t& b_at) {
    w_at = replicated(name + ".weight", C, ParamKind::norm);
    if (ln && cfg.bias) b_at = replicated(name + ".bias", C, ParamKind::bias);
  };
  auto vocab_table = [&](const std::string& name, ParamKind kind, bool in_matmul, bool counts) {
    ParamInfo p;
    p.name = name;
    p.global_shape = {V, C};
    p.shape = {Vl, C};
    p.split = TpSplit::rows;
    p.split_offset = r * Vl;
    p.real_rows = std::max<std::int64_t>(0, std::min<std::int64_t>(Vl, V - r * Vl));
    p.kind = kind;
    p.init_std = std0;
    p.in_matmul = in_matmul;
    p.counts_in_norm = counts;
    return t.add(p);
  };
  const int first = place.first_layer;
  const int count = place.num_layers < 0 ? cfg.num_layers : place.num_layers;
  ChunkOffsets& o = t.offsets();
  o.first_layer = first;
  if (place.has_embedding) {
    o.wte = vocab_table("embed.wte", ParamKind::embedding, cfg.tied_embeddings && place.has_head, true);
    if (cfg.positions == config::PositionKind::learned) {
      ParamInfo p;
      p.name = "embed.wpe";
      p.shape = p.global_shape = {cfg.max_seq_len, C};
      p.kind = ParamKind::embedding;
      p.init_std = std0;
      p.counts_in_norm = r == 0;
      o.wpe = t.add(p);
    }
  }
  const std::int64_t unit = std::max(1, place.unit_multiple);
  for (int l = first; l < first + count; ++l) {
    t.align(unit);
    LayerOffsets& lo = o.layers.emplace_back();
    norm(layer_name(l, "attn_norm"), lo.attn_norm_w, lo.attn_norm_b);
    column(layer_name(l, "attn.wq"), Q, C, std0, lo.wq, lo.bq);
    column(layer_name(l, "attn.wk"), KV, C, std0, lo.wk, lo.bk);
    column(layer_name(l, "attn.wv"), KV, C, std0, lo.wv, lo.bv);
    row(layer_name(l, "attn.wo"), C, Q, std_out, lo.wo, lo.bo);
    norm(layer_name(l, "mlp_norm"), lo.mlp_norm_w, lo.mlp_norm_b);
    if (cfg.mlp == config::MlpKind::gelu) {
      column(layer_name(l, "mlp.fc"), F, C, std0, lo.w1, lo.b1);
      row(layer_name(l, "mlp.proj"), C, F, std_out, lo.w2, lo.b2);
    } else {
      column(layer_name(l, "mlp.gate"), F, C, std0, lo.w1, lo.b1);
      column(layer_name(l, "mlp.up"), F, C, std0, lo.w3, lo.b3);
      row(layer_name(l, "mlp.down"), C, F, std_out, lo.w2, lo.b2);
    }
  }
  t.align(unit);
  if (place.has_head) {
    norm("final_norm", o.final_norm_w, o.final_norm_b);
    if (!cfg.tied_embeddings)
      o.head = vocab_table("lm_head.weight", ParamKind::matrix, true, true);
    else if (!place.has_embedding)
      // Tied output layer on a later pipeline stage: a copy of embed.wte kept in sync through
      // the embedding group; the first stage's copy is the one the norm counts.
      o.head = vocab_table("embed.wte", ParamKind::embedding, true, false);
    else
      o.head = o.wte;
  }
  t.align(unit);
  return t;
}

template <class T>
void init_parameter_values(const ParameterTable& table, std::uint64_t seed, T* params) {
  // Every element is a pure function of (seed, name, global index), so the draws split into
  // independent chunks; large models (a billion draws at ~50 ns each) use every core.
  struct Chunk {
    const ParamInfo* p;
    std::int64_t begin, end;
  };
  constexpr std::int64_t kChunk = 1 << 20;
  std::vector<Chunk> chunks;
  for (const ParamInfo& p : table.entries()) {
    T* w = params + p.offset;
    if (p.init_std == 0.0) {
      std::fill(w, w + p.numel, T(p.kind == ParamKind::norm ? 1 : 0));
      continue;
    }
    // Element i of the *global* tensor, whatever shard of it this rank holds: every layout
    // draws the same weights (DESIGN.md invariant 2). Vocabulary padding rows stay zero.
    const std::int64_t real = p.real_rows < 0 ? p.numel : p.real_rows * p.shape[1];
    for (std::int64_t b = 0; b < real; b += kChunk) chunks.push_back({&p, b, std::min(real, b + kChunk)});
    std::fill(w + real, w + p.numel, T(0));
  }
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t c = next++; c < chunks.size(); c = next++) {
      const ParamInfo& p = *chunks[c].p;
      const core::CounterRng rng(seed, p.name);
      T* w = params + p.offset;
      for (std::int64_t i = chunks[c].begin; i < chunks[c].end; ++i)
        w[i] = T(p.init_std * rng.normal(std::uint64_t(p.global_index(i))));
    }
  };
  const std::size_t threads =
      std::min<std::size_t>(chunks.size(), std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
}

template void init_parameter_values<float>(const ParameterTable&, std::uint64_t, float*);
template void init_parameter_values<double>(const ParameterTable&, std::uint64_t, double*);

}  // namespace strata::model
