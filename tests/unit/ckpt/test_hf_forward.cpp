// The exported weights mean the same model to Hugging Face: a plain-loop forward written the
// way transformers' GPT2LMHeadModel and LlamaForCausalLM compute it (Conv1D x·W + b with W
// [in, out], c_attn split into q | k | v, gelu_new, rotate-half RoPE with inv_freq =
// θ^(−2i/hd), repeat_kv for GQA, RMSNorm x·rsqrt(mean x² + eps)·w), run in double on the
// HF tensors the export builds, gives the log-probabilities strata's own forward gives.
// This checks the mapping's meaning (transposition direction, fusion order, RoPE pairing,
// KV-head grouping), not only where the numbers go. (transformers itself is not installable
// here; this is its math, written from its modelling code's definitions.)
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "strata/ckpt/export_hf.hpp"
#include "strata/model/transformer.hpp"

using namespace strata;
using namespace strata::ckpt;
using config::ModelConfig;

namespace {

using Mat = std::vector<double>;  // row-major

struct Hf {
  std::map<std::string, std::vector<double>> t;
  const std::vector<double>& operator[](const std::string& n) const { return t.at(n); }
  bool has(const std::string& n) const { return t.count(n) > 0; }
};

// y[T, out] = x[T, in] · W  with W stored [in, out] (Conv1D) or [out, in] (nn.Linear, transposed)
Mat matmul(const Mat& x, std::int64_t T, std::int64_t in, const std::vector<double>& w, std::int64_t out,
           bool w_in_out, const std::vector<double>* bias = nullptr) {
  Mat y(std::size_t(T * out), 0.0);
  for (std::int64_t r = 0; r < T; ++r)
    for (std::int64_t o = 0; o < out; ++o) {
      double s = bias ? (*bias)[std::size_t(o)] : 0.0;
      for (std::int64_t i = 0; i < in; ++i)
        s += x[std::size_t(r * in + i)] *
             (w_in_out ? w[std::size_t(i * out + o)] : w[std::size_t(o * in + i)]);
      y[std::size_t(r * out + o)] = s;
    }
  return y;
}

Mat layer_norm(const Mat& x, std::int64_t T, std::int64_t C, const std::vector<double>& w,
               const std::vector<double>& b, double eps) {
  Mat y(x.size());
  for (std::int64_t r = 0; r < T; ++r) {
    double mean = 0, var = 0;
    for (std::int64_t c = 0; c < C; ++c) mean += x[std::size_t(r * C + c)];
    mean /= double(C);
    for (std::int64_t c = 0; c < C; ++c) var += std::pow(x[std::size_t(r * C + c)] - mean, 2);
    var /= double(C);
    for (std::int64_t c = 0; c < C; ++c)
      y[std::size_t(r * C + c)] =
          (x[std::size_t(r * C + c)] - mean) / std::sqrt(var + eps) * w[std::size_t(c)] + b[std::size_t(c)];
  }
  return y;
}

Mat rms_norm(const Mat& x, std::int64_t T, std::int64_t C, const std::vector<double>& w, double eps) {
  Mat y(x.size());
  for (std::int64_t r = 0; r < T; ++r) {
    double ms = 0;
    for (std::int64_t c = 0; c < C; ++c) ms += x[std::size_t(r * C + c)] * x[std::size_t(r * C + c)];
    const double inv = 1.0 / std::sqrt(ms / double(C) + eps);
    for (std::int64_t c = 0; c < C; ++c)
      y[std::size_t(r * C + c)] = x[std::size_t(r * C + c)] * inv * w[std::size_t(c)];
  }
  return y;
}

// Causal attention; q [T, Hq*hd], k/v [T, Hkv*hd] (from column offsets of their rows), head h
// reads KV head h / (Hq / Hkv) (repeat_kv).
Mat attention(const Mat& q, std::int64_t ldq, const Mat& k, const Mat& v, std::int64_t ldkv,
              std::int64_t koff, std::int64_t voff, std::int64_t T, std::int64_t Hq, std::int64_t Hkv,
              std::int64_t hd) {
  Mat y(std::size_t(T * Hq * hd), 0.0);
  for (std::int64_t h = 0; h < Hq; ++h) {
    const std::int64_t g = h / (Hq / Hkv);
    for (std::int64_t i = 0; i < T; ++i) {
      std::vector<double> s(std::size_t(i + 1));
      double mx = -1e300;
      for (std::int64_t j = 0; j <= i; ++j) {
        double d = 0;
        for (std::int64_t e = 0; e < hd; ++e)
          d += q[std::size_t(i * ldq + h * hd + e)] * k[std::size_t(j * ldkv + koff + g * hd + e)];
        s[std::size_t(j)] = d / std::sqrt(double(hd));
        mx = std::max(mx, s[std::size_t(j)]);
      }
      double z = 0;
      for (auto& x : s) z += (x = std::exp(x - mx));
      for (std::int64_t j = 0; j <= i; ++j)
        for (std::int64_t e = 0; e < hd; ++e)
          y[std::size_t(i * Hq * hd + h * hd + e)] +=
              s[std::size_t(j)] / z * v[std::size_t(j * ldkv + voff + g * hd + e)];
    }
  }
  return y;
}

// transformers' LlamaRotaryEmbedding + apply_rotary_pos_emb: emb = cat(freqs, freqs),
// x * cos + rotate_half(x) * sin with rotate_half(x) = cat(-x2, x1).
void rope(Mat& x, std::int64_t T, std::int64_t H, std::int64_t hd, double theta) {
  const std::int64_t half = hd / 2;
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t h = 0; h < H; ++h) {
      double* p = &x[std::size_t((t * H + h) * hd)];
      std::vector<double> out(static_cast<std::size_t>(hd));
      for (std::int64_t e = 0; e < hd; ++e) {
        const double inv_freq = 1.0 / std::pow(theta, double(2 * (e % half)) / double(hd));
        const double ang = double(t) * inv_freq;
        const double rot = e < half ? -p[e + half] : p[e - half];
        out[std::size_t(e)] = p[e] * std::cos(ang) + rot * std::sin(ang);
      }
      std::copy(out.begin(), out.end(), p);
    }
}

double gelu_new(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
double silu(double x) { return x / (1.0 + std::exp(-x)); }

// logits [T, V] as transformers computes them from the exported tensors.
Mat hf_logits(HfArch arch, const ModelConfig& m, const Hf& w, const std::vector<std::int32_t>& ids) {
  const std::int64_t T = std::int64_t(ids.size()), C = m.d_model, V = m.vocab_size, F = m.ffn();
  const std::int64_t Hq = m.num_heads, Hkv = m.kv_heads(), hd = C / Hq;
  const std::string emb = arch == HfArch::gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight";
  Mat h(std::size_t(T * C));
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t c = 0; c < C; ++c) {
      h[std::size_t(t * C + c)] = w[emb][std::size_t(ids[std::size_t(t)] * C + c)];
      if (arch == HfArch::gpt2)
        h[std::size_t(t * C + c)] += w["transformer.wpe.weight"][std::size_t(t * C + c)];
    }
  for (int l = 0; l < m.num_layers; ++l) {
    if (arch == HfArch::gpt2) {
      const std::string p = "transformer.h." + std::to_string(l) + ".";
      const Mat a = layer_norm(h, T, C, w[p + "ln_1.weight"], w[p + "ln_1.bias"], m.norm_eps);
      const Mat qkv = matmul(a, T, C, w[p + "attn.c_attn.weight"], 3 * C, true, &w[p + "attn.c_attn.bias"]);
      const Mat y =
          attention(qkv, 3 * C, qkv, qkv, 3 * C, C, 2 * C, T, Hq, Hq, hd);  // split(C, dim=2): q | k | v
      const Mat o = matmul(y, T, C, w[p + "attn.c_proj.weight"], C, true, &w[p + "attn.c_proj.bias"]);
      for (std::size_t i = 0; i < h.size(); ++i) h[i] += o[i];
      const Mat b = layer_norm(h, T, C, w[p + "ln_2.weight"], w[p + "ln_2.bias"], m.norm_eps);
      Mat f = matmul(b, T, C, w[p + "mlp.c_fc.weight"], F, true, &w[p + "mlp.c_fc.bias"]);
      for (auto& x : f) x = gelu_new(x);
      const Mat d = matmul(f, T, F, w[p + "mlp.c_proj.weight"], C, true, &w[p + "mlp.c_proj.bias"]);
      for (std::size_t i = 0; i < h.size(); ++i) h[i] += d[i];
    } else {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      auto bias = [&](const std::string& n) { return w.has(n) ? &w[n] : nullptr; };
      const Mat a = rms_norm(h, T, C, w[p + "input_layernorm.weight"], m.norm_eps);
      Mat q = matmul(a, T, C, w[p + "self_attn.q_proj.weight"], Hq * hd, false,
                     bias(p + "self_attn.q_proj.bias"));
      Mat k = matmul(a, T, C, w[p + "self_attn.k_proj.weight"], Hkv * hd, false,
                     bias(p + "self_attn.k_proj.bias"));
      const Mat v = matmul(a, T, C, w[p + "self_attn.v_proj.weight"], Hkv * hd, false,
                           bias(p + "self_attn.v_proj.bias"));
      rope(q, T, Hq, hd, m.rope_theta);
      rope(k, T, Hkv, hd, m.rope_theta);
      const Mat y = attention(q, Hq * hd, k, v, Hkv * hd, 0, 0, T, Hq, Hkv, hd);
      const Mat o = matmul(y, T, Hq * hd, w[p + "self_attn.o_proj.weight"], C, false,
                           bias(p + "self_attn.o_proj.bias"));
      for (std::size_t i = 0; i < h.size(); ++i) h[i] += o[i];
      const Mat b = rms_norm(h, T, C, w[p + "post_attention_layernorm.weight"], m.norm_eps);
      const Mat g = matmul(b, T, C, w[p + "mlp.gate_proj.weight"], F, false, bias(p + "mlp.gate_proj.bias"));
      const Mat u = matmul(b, T, C, w[p + "mlp.up_proj.weight"], F, false, bias(p + "mlp.up_proj.bias"));
      Mat f(g.size());
      for (std::size_t i = 0; i < f.size(); ++i) f[i] = silu(g[i]) * u[i];
      const Mat d = matmul(f, T, F, w[p + "mlp.down_proj.weight"], C, false, bias(p + "mlp.down_proj.bias"));
      for (std::size_t i = 0; i < h.size(); ++i) h[i] += d[i];
    }
  }
  const Mat x = arch == HfArch::gpt2 ? layer_norm(h, T, C, w["transformer.ln_f.weight"],
                                                  w["transformer.ln_f.bias"], m.norm_eps)
                                     : rms_norm(h, T, C, w["model.norm.weight"], m.norm_eps);
  const bool tied = !w.has("lm_head.weight");
  return matmul(x, T, C, tied ? w[emb] : w["lm_head.weight"], V, false);
}

// Exports a randomly perturbed strata model (norm weights and biases away from 1 and 0) and
// compares log p(v | prefix) for every position and token.
void check_same_model(const ModelConfig& m) {
  const int T = 7;
  model::Transformer<float> net(m, 1, T);
  net.init_parameters(11);
  std::mt19937 gen(5);
  std::normal_distribution<float> noise(0.0f, 0.15f);
  for (const auto& p : net.table().entries()) {
    float* v = net.param(p.name);
    for (std::int64_t i = 0; i < p.numel; ++i)
      v[i] += noise(gen) * (p.kind == model::ParamKind::matrix ? 0.5f : 2.0f);
  }
  const HfExportPlan plan = plan_hf_export(m, StDtype::f32);
  const TensorReader read = [&](const std::string& name) {
    const float* v = net.param(name);
    return std::vector<float>(v, v + net.table().get(name).numel);
  };
  Hf hf;
  for (const HfTensor& t : plan.tensors) {
    const std::vector<float> v = build_hf_tensor(t, read);
    hf.t[t.name] = std::vector<double>(v.begin(), v.end());
  }
  const std::vector<std::int32_t> ids{3, 17, 0, 42, 9, 9, 63};
  const Mat logits = hf_logits(plan.arch, m, hf, ids);
  const std::int64_t V = m.vocab_size;
  double max_diff = 0;
  std::vector<std::int32_t> targets(T, -1);
  for (int t = 0; t < T; ++t) {
    double mx = -1e300, z = 0;
    for (std::int64_t v = 0; v < V; ++v) mx = std::max(mx, logits[std::size_t(t * V + v)]);
    for (std::int64_t v = 0; v < V; ++v) z += std::exp(logits[std::size_t(t * V + v)] - mx);
    for (std::int32_t v = 0; v < V; v += 3) {
      targets[std::size_t(t)] = v;
      const double strata_logp = -net.forward(ids.data(), targets.data()).sum;
      const double hf_logp = logits[std::size_t(t * V + v)] - mx - std::log(z);
      max_diff = std::max(max_diff, std::fabs(strata_logp - hf_logp));
      // strata runs in fp32 (activations ~1, 2 layers): 1e-4 is ~100 fp32 ulps of the logits.
      ASSERT_NEAR(strata_logp, hf_logp, 1e-4) << m.name << " position " << t << " token " << v;
    }
    targets[std::size_t(t)] = -1;
  }
  std::printf("%s (%s): max |log p difference| strata vs HF math %.2e\n", m.name.c_str(),
              to_string(plan.arch), max_diff);
}

ModelConfig tiny(bool llama) {
  ModelConfig m;
  m.name = llama ? "tiny_llama_gqa" : "tiny_gpt2";
  m.num_layers = 2;
  m.d_model = 32;
  m.num_heads = 4;
  m.vocab_size = 64;
  m.max_seq_len = 16;
  if (llama) {
    m.num_kv_heads = 2;
    m.ffn_hidden = 48;
    m.norm = config::NormKind::rmsnorm;
    m.mlp = config::MlpKind::swiglu;
    m.positions = config::PositionKind::rope;
    m.rope_theta = 500.0;  // a small theta: positions 0..6 rotate visibly in every pair
    m.tied_embeddings = false;
    m.bias = false;
  }
  return m;
}

}  // namespace

TEST(HfForward, Gpt2ExportComputesStrataLogProbs) { check_same_model(tiny(false)); }

TEST(HfForward, Gpt2UntiedWithoutBiasesComputesStrataLogProbs) {
  ModelConfig m = tiny(false);
  m.name = "tiny_gpt2_untied_nobias";
  m.tied_embeddings = false;
  m.bias = false;
  check_same_model(m);
}

TEST(HfForward, LlamaGqaExportComputesStrataLogProbs) { check_same_model(tiny(true)); }

TEST(HfForward, LlamaWithBiasesTiedComputesStrataLogProbs) {
  ModelConfig m = tiny(true);
  m.name = "tiny_llama_bias_tied";
  m.bias = true;
  m.tied_embeddings = true;
  check_same_model(m);
}
