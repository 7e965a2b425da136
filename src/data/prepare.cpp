// The prepare pipeline (prepare.hpp, docs/data-pipeline.md).
#include "strata/data/prepare.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "strata/comm/collectives.hpp"
#include "strata/core/error.hpp"
#include "strata/core/log.hpp"
#include "strata/core/timer.hpp"
#include "strata/data/format.hpp"
#include "strata/data/hash.hpp"
#include "strata/data/json_scan.hpp"
#include "strata/data/normalize.hpp"
#include "strata/data/pii.hpp"
#include "strata/data/quality.hpp"
#include "strata/data/tokenizer.hpp"

namespace strata::data {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxMalformedMessages = 10;  // per rank; the rest are only counted

// ---- reading ------------------------------------------------------------------------------------

// The whole file, gunzipped when it is gzip (zlib reads plain files transparently).
std::string read_input(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw make_error("cannot open input '", path, "': ", std::strerror(errno ? errno : ENOMEM));
  gzbuffer(f, 1 << 17);
  std::string data;
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (!ec) data.reserve(std::size_t(size));
  char buf[1 << 16];
  for (;;) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int code = 0;
      const std::string msg = gzerror(f, &code);
      gzclose(f);
      throw make_error(
          "cannot read input '", path,
          "': ", code == Z_ERRNO ? std::string(std::strerror(errno)) : msg + " (corrupt or truncated gzip?)");
    }
    if (n == 0) break;
    data.append(buf, std::size_t(n));
  }
  // A truncated gzip stream ends without an error from gzread but without its trailer.
  int code = 0;
  const char* msg = gzerror(f, &code);
  if (code != Z_OK && code != Z_STREAM_END) {
    const std::string m = msg;
    gzclose(f);
    throw make_error("cannot read input '", path, "': ", m, " (corrupt or truncated gzip?)");
  }
  gzclose(f);
  return data;
}

bool ends_with(const std::string& s, const char* suffix) {
  const std::size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

bool is_jsonl(const std::string& path, InputFormat format) {
  if (format != InputFormat::auto_detect) return format == InputFormat::jsonl;
  return ends_with(path, ".jsonl") || ends_with(path, ".jsonl.gz") || ends_with(path, ".json") ||
         ends_with(path, ".json.gz") || ends_with(path, ".ndjson") || ends_with(path, ".ndjson.gz");
}

bool blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

// Calls emit(text) for each document of one file, in file order.
template <class Emit>
void split_documents(const std::string& path, std::string& data, const PrepareOptions& opt, PrepareStats& st,
                     std::vector<std::string>& malformed, Emit&& emit) {
  if (is_jsonl(path, opt.format)) {
    std::size_t line_no = 0;
    for (std::size_t pos = 0; pos < data.size();) {
      std::size_t end = data.find('\n', pos);
      if (end == std::string::npos) end = data.size();
      ++line_no;
      const std::string_view view(data.data() + pos, end - pos);
      pos = end + 1;
      if (blank(view)) continue;
      // The common line, a valid object whose field is a string, in one scan (json_scan.hpp);
      // it is then valid UTF-8, so the repair below would change nothing. Anything else goes
      // the general way: repair, nlohmann, its verdict.
      std::string text;
      if (json_string_field(view, opt.text_field, text) == JsonScan::found) {
        emit(std::move(text));
        continue;
      }
      std::string line(view);
      // Repair first: the JSON parser rejects invalid UTF-8 inside strings.
      if (const std::size_t bad = repair_utf8(line))
        st.invalid_utf8_docs += 1, st.invalid_utf8_sequences += bad;
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      const char* problem = nullptr;
      if (j.is_discarded())
        problem = "malformed JSON";
      else if (!j.is_object())
        problem = "not a JSON object";
      else if (!j.contains(opt.text_field))
        problem = "no field";
      else if (!j[opt.text_field].is_string())
        problem = "field is not a string";
      if (problem) {
        ++st.malformed_lines;
        if (malformed.size() < kMaxMalformedMessages) {
          std::string m = path + ":" + std::to_string(line_no) + ": " + problem;
          if (std::strcmp(problem, "no field") == 0 || std::strcmp(problem, "field is not a string") == 0)
            m = path + ":" + std::to_string(line_no) + ": " +
                (problem[0] == 'n' ? "no field '" + opt.text_field + "'"
                                   : "field '" + opt.text_field + "' is not a string");
          malformed.push_back(m + " (line skipped)");
        }
        continue;
      }
      emit(j[opt.text_field].get<std::string>());
    }
    return;
  }
  if (opt.doc_split == DocSplit::file) {
    emit(std::move(data));
    return;
  }
  // Blocks separated by one or more blank lines.
  std::string doc;
  for (std::size_t pos = 0; pos <= data.size();) {
    std::size_t end = data.find('\n', pos);
    if (end == std::string::npos) end = data.size();
    const std::string_view line(data.data() + pos, end - pos);
    if (blank(line)) {
      if (!doc.empty()) emit(std::move(doc));
      doc.clear();
    } else {
      doc.append(line);
      doc.push_back('\n');
    }
    if (end == data.size()) break;
    pos = end + 1;
  }
  if (!doc.empty()) emit(std::move(doc));
}

// Accumulates the time since the last lap into a stage's total.
class StageClock {
 public:
  void lap(double& total) {
    const auto now = std::chrono::steady_clock::now();
    total += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

// ---- progress ------------------------------------------------------------------------------------
class Progress {
 public:
  Progress(bool enabled, double interval, int ranks)
      : enabled_(enabled && interval > 0), interval_(interval), ranks_(ranks) {}
  void start(const char* stage, std::uint64_t total_bytes) {
    stage_ = stage, total_ = total_bytes, clock_.reset(), last_ = 0;
  }
  void update(std::uint64_t docs, std::uint64_t bytes) {
    if (!enabled_ || clock_.seconds() - last_ < interval_) return;
    last_ = clock_.seconds();
    const double mb = double(bytes) / 1e6, rate = mb / std::max(1e-9, last_);
    const double eta = rate > 0 ? (double(total_) / 1e6 - mb) / rate : 0;
    char line[256];
    std::snprintf(line, sizeof line, "prepare: %s %llu documents, %.1f of %.1f MB%s, %.1f MB/s, ETA %.0f s",
                  stage_, static_cast<unsigned long long>(docs), mb, double(total_) / 1e6,
                  ranks_ > 1 ? " (rank 0's share)" : "", rate, std::max(0.0, eta));
    log_line(LogLevel::info, line);
  }

 private:
  bool enabled_;
  double interval_;
  int ranks_;
  const char* stage_ = "";
  std::uint64_t total_ = 0;
  Timer clock_;
  double last_ = 0;
};

// ---- statistics as a flat list (for the all-reduce and the JSON) ----
template <class S, class V>
void visit_counters(S& s, V&& v) {
  v("files", s.files);
  v("input_bytes", s.input_bytes);
  v("documents_read", s.documents_read);
  v("chars_read", s.chars_read);
  v("malformed_lines", s.malformed_lines);
  v("invalid_utf8_docs", s.invalid_utf8_docs);
  v("invalid_utf8_sequences", s.invalid_utf8_sequences);
  v("normalized_docs", s.normalized_docs);
  v("empty_docs", s.empty_docs);
  v("empty_chars", s.empty_chars);
  for (int r = 0; r < kNumFilterRules; ++r) {
    v((std::string("filter.") + filter_rule_name(FilterRule(r)) + ".docs").c_str(),
      s.filtered_docs[std::size_t(r)]);
    v((std::string("filter.") + filter_rule_name(FilterRule(r)) + ".chars").c_str(),
      s.filtered_chars[std::size_t(r)]);
  }
  v("quality.docs", s.quality_docs);
  v("quality.chars", s.quality_chars);
  v("exact_duplicates", s.exact_duplicates);
  v("exact_duplicate_chars", s.exact_duplicate_chars);
  v("near_duplicates", s.near_duplicates);
  v("near_duplicate_chars", s.near_duplicate_chars);
  v("pii_docs", s.pii_docs);
  v("pii_emails", s.pii_emails);
  v("pii_ipv4", s.pii_ipv4);
  v("pii_ipv6", s.pii_ipv6);
  v("pii_phones", s.pii_phones);
  v("documents_written", s.documents_written);
  v("chars_written", s.chars_written);
  v("tokens_written", s.tokens_written);
}

std::string with_commas(std::uint64_t v) {
  const std::string digits = std::to_string(v);
  std::string s;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) s.push_back(',');
    s.push_back(digits[i]);
  }
  return s;
}

}  // namespace

std::uint64_t PrepareStats::filtered_total() const {
  std::uint64_t n = 0;
  for (auto c : filtered_docs) n += c;
  return n;
}

std::string PrepareStats::to_json() const {
  nlohmann::ordered_json j;
  visit_counters(*this, [&](const char* name, std::uint64_t v) { j[name] = v; });
  return j.dump();
}

std::string PrepareStats::report(const PrepareOptions& opt) const {
  std::ostringstream os;
  char line[256];
  const double mb = double(input_bytes) / 1e6;
  auto pct = [&](std::uint64_t chars) {
    return chars_read ? 100.0 * double(chars) / double(chars_read) : 0.0;
  };
  std::snprintf(line, sizeof line, "prepare report: %s file(s), %.2f MB in %.2f s (%.2f MB/s)\n",
                with_commas(files).c_str(), mb, seconds, seconds > 0 ? mb / seconds : 0.0);
  os << line;
  std::snprintf(
      line, sizeof line,
      "  (slowest rank: read+normalise+filter %.2f s, dedup %.2f s, PII+tokenise %.2f s, rest %.2f s)\n",
      read_seconds, dedup_seconds, tokenize_seconds,
      std::max(0.0, seconds - read_seconds - dedup_seconds - tokenize_seconds));
  os << line;
  std::snprintf(
      line, sizeof line,
      "  (stages: read %.2f, normalise %.2f, filters %.2f, quality %.2f, exact dedup %.2f, near dedup %.2f, "
      "PII %.2f, tokenise %.2f, write %.2f s)\n",
      std::max(0.0, read_seconds - normalize_seconds - filter_seconds - quality_seconds), normalize_seconds,
      filter_seconds, quality_seconds, exact_seconds, near_seconds, pii_seconds,
      std::max(0.0, tokenize_seconds - pii_seconds), write_seconds);
  os << line;
  auto row = [&](const std::string& what, std::uint64_t docs, std::uint64_t chars, bool show_chars = true) {
    if (show_chars)
      std::snprintf(line, sizeof line, "  %-40s %10s docs %12s chars (%5.2f%%)\n", what.c_str(),
                    with_commas(docs).c_str(), with_commas(chars).c_str(), pct(chars));
    else
      std::snprintf(line, sizeof line, "  %-40s %10s\n", what.c_str(), with_commas(docs).c_str());
    os << line;
  };
  row("documents read", documents_read, chars_read);
  row("malformed JSONL lines (skipped)", malformed_lines, 0, false);
  std::snprintf(line, sizeof line, "  %-34s %12s docs %14s sequences\n", "invalid UTF-8 (replaced)",
                with_commas(invalid_utf8_docs).c_str(), with_commas(invalid_utf8_sequences).c_str());
  os << line;
  row(opt.normalize ? "normalised (changed)" : "normalisation: off", normalized_docs, 0, false);
  row("removed: empty", empty_docs, empty_chars);
  if (opt.filter) {
    for (int r = 0; r < kNumFilterRules; ++r)
      row(std::string("removed by filter ") + filter_rule_name(FilterRule(r)), filtered_docs[std::size_t(r)],
          filtered_chars[std::size_t(r)]);
  } else {
    os << "  quality filters: off\n";
  }
  if (!opt.quality_model.empty()) {
    if (opt.quality_pareto_alpha > 0)
      std::snprintf(line, sizeof line, "removed: quality (Pareto, alpha %g)", opt.quality_pareto_alpha);
    else
      std::snprintf(line, sizeof line, "removed: quality score < %g", opt.quality_threshold);
    row(line, quality_docs, quality_chars);
  } else {
    os << "  quality classifier: off\n";
  }
  if (opt.exact_dedup)
    row("removed: exact duplicates", exact_duplicates, exact_duplicate_chars);
  else
    os << "  exact deduplication: off\n";
  if (opt.near_dedup) {
    std::snprintf(line, sizeof line, "removed: near duplicates (J>=%.2f)", opt.minhash.threshold);
    row(line, near_duplicates, near_duplicate_chars);
  } else {
    os << "  near deduplication: off\n";
  }
  if (opt.pii)
    std::snprintf(line, sizeof line, "  %-34s %12s docs: %llu e-mail, %llu IPv4, %llu IPv6, %llu phone\n",
                  "PII replaced", with_commas(pii_docs).c_str(), static_cast<unsigned long long>(pii_emails),
                  static_cast<unsigned long long>(pii_ipv4), static_cast<unsigned long long>(pii_ipv6),
                  static_cast<unsigned long long>(pii_phones));
  else
    std::snprintf(line, sizeof line, "  PII scrubbing: off\n");
  os << line;
  row("written", documents_written, chars_written);
  std::snprintf(line, sizeof line, "  %-34s %12s (tokenizer %s)\n", "tokens written",
                with_commas(tokens_written).c_str(), opt.tokenizer.c_str());
  os << line;
  return os.str();
}

std::vector<std::string> read_corpus(const std::vector<std::string>& inputs, const PrepareOptions& opt,
                                     std::size_t max_docs) {
  std::vector<std::string> docs;
  PrepareStats st;
  std::vector<std::string> malformed;
  for (const std::string& file : list_input_files(inputs)) {
    if (max_docs > 0 && docs.size() >= max_docs) break;
    std::string data = read_input(file);
    const bool jsonl = is_jsonl(file, opt.format);
    split_documents(file, data, opt, st, malformed, [&](std::string text) {
      if (max_docs > 0 && docs.size() >= max_docs) return;
      if (!jsonl) repair_utf8(text);
      if (opt.normalize) normalize_text(text);
      if (!text.empty()) docs.push_back(std::move(text));
    });
  }
  for (const auto& m : malformed) std::fprintf(stderr, "strata: warning: %s\n", m.c_str());
  return docs;
}

std::vector<std::string> list_input_files(const std::vector<std::string>& inputs) {
  STRATA_CHECK(!inputs.empty(), "prepare: no input given (--input FILE_OR_FOLDER ...)");
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    std::error_code ec;
    const auto st = fs::status(in, ec);
    if (ec || !fs::exists(st)) throw make_error("input '", in, "': No such file or directory");
    if (fs::is_directory(st)) {
      const std::size_t before = files.size();
      for (auto it = fs::recursive_directory_iterator(in, fs::directory_options::none, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!name.empty() && name[0] == '.') {
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file()) files.push_back(it->path().string());
      }
      if (ec) throw make_error("input folder '", in, "': ", ec.message());
      if (files.size() == before) throw make_error("input folder '", in, "' holds no files");
    } else {
      files.push_back(in);
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  for (const auto& f : files) {
    std::FILE* fp = std::fopen(f.c_str(), "rb");
    if (!fp) throw make_error("cannot open input '", f, "': ", std::strerror(errno));
    std::fclose(fp);
  }
  return files;
}

PrepareStats run_prepare(const PrepareOptions& opt, comm::Communicator& comm) {
  const Timer clock;
  const bool root = comm.rank() == 0;
  STRATA_CHECK(!opt.output.empty(), "prepare: no output given (--output FILE.h5)");
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(opt.tokenizer);
  std::optional<QualityModel> quality;
  if (!opt.quality_model.empty()) {
    STRATA_CHECK(opt.quality_pareto_alpha > 0 || (opt.quality_threshold >= 0 && opt.quality_threshold <= 1),
                 "prepare: --quality-threshold must be in [0, 1], got ", opt.quality_threshold);
    quality = QualityModel::load(opt.quality_model);
  }
  const std::vector<std::string> files = list_input_files(opt.inputs);
  for (const auto& f : files) {
    std::error_code ec;
    if (fs::equivalent(f, opt.output, ec))
      throw make_error("prepare: the output '", opt.output, "' is also an input");
  }

  // ---- split the files: rank r reads a contiguous run, balanced by size ----
  std::vector<std::uint64_t> sizes(files.size());
  std::uint64_t total_bytes = 0;
  for (std::size_t i = 0; i < files.size(); ++i) total_bytes += sizes[i] = fs::file_size(files[i]);
  std::size_t first_file = files.size(), end_file = files.size();
  {
    std::uint64_t before = 0;
    for (std::size_t i = 0; i < files.size(); ++i) {
      const std::uint64_t mid2 = 2 * before + sizes[i];  // twice the file's midpoint
      const int owner =
          total_bytes == 0
              ? 0
              : int(std::min<std::uint64_t>(std::uint64_t(comm.size()) - 1,
                                            mid2 * std::uint64_t(comm.size()) / (2 * total_bytes)));
      if (owner == comm.rank()) {
        if (first_file == files.size()) first_file = i;
        end_file = i + 1;
      }
      before += sizes[i];
    }
    if (first_file == files.size()) end_file = first_file;  // no files for this rank
  }
  std::uint64_t my_bytes = 0;
  for (std::size_t i = first_file; i < end_file; ++i) my_bytes += sizes[i];

  // ---- read, repair, normalise, filter (local) ----
  PrepareStats st;
  st.files = end_file - first_file;
  st.input_bytes = my_bytes;
  std::vector<std::string> docs;
  std::vector<float> scores;  // quality scores of `docs` (with a quality model)
  std::vector<std::string> malformed;
  Progress progress(root && !opt.quiet, opt.progress_interval_s, comm.size());
  progress.start("read", my_bytes);
  std::uint64_t bytes_done = 0;
  for (std::size_t fi = first_file; fi < end_file; ++fi) {
    std::string data = read_input(files[fi]);
    const bool jsonl = is_jsonl(files[fi], opt.format);
    std::uint64_t file_chars = 0;
    split_documents(files[fi], data, opt, st, malformed, [&](std::string text) {
      ++st.documents_read;
      st.chars_read += text.size();
      const std::size_t raw = text.size();
      file_chars += raw;
      StageClock stage;
      if (!jsonl)  // JSONL lines were repaired before parsing
        if (const std::size_t bad = repair_utf8(text))
          st.invalid_utf8_docs += 1, st.invalid_utf8_sequences += bad;
      if (opt.normalize && normalize_text(text)) ++st.normalized_docs;
      stage.lap(st.normalize_seconds);
      if (text.empty()) {
        ++st.empty_docs, st.empty_chars += raw;
        return;
      }
      if (opt.filter) {
        const auto rule = check_quality(text, opt.filters);
        stage.lap(st.filter_seconds);
        if (rule) {
          ++st.filtered_docs[std::size_t(*rule)];
          st.filtered_chars[std::size_t(*rule)] += text.size();
          return;
        }
      }
      if (quality) {
        const double score = quality->score(text);
        stage.lap(st.quality_seconds);
        const bool keep = opt.quality_pareto_alpha > 0
                              ? pareto_keep(score, opt.quality_pareto_alpha, text, opt.quality_seed)
                              : score >= opt.quality_threshold;
        if (!keep) {
          ++st.quality_docs, st.quality_chars += text.size();
          return;
        }
        scores.push_back(float(score));
      }
      docs.push_back(std::move(text));
      progress.update(st.documents_read, bytes_done + std::min(file_chars, sizes[fi]));
    });
    bytes_done += sizes[fi];
    progress.update(st.documents_read, bytes_done);
  }
  for (const auto& m : malformed)
    std::fprintf(stderr, "strata prepare: warning (rank %d): %s\n", comm.rank(), m.c_str());
  if (st.malformed_lines > malformed.size())
    std::fprintf(stderr, "strata prepare: warning (rank %d): %llu more malformed lines not shown\n",
                 comm.rank(), static_cast<unsigned long long>(st.malformed_lines - malformed.size()));

  st.read_seconds = clock.seconds();
  // Keeps the documents whose flag (from the global list, starting at `first`) is 0.
  auto drop_flagged = [&](const std::vector<std::uint8_t>& flags, std::uint64_t first, std::uint64_t& count,
                          std::uint64_t& chars) {
    std::size_t w = 0;
    for (std::size_t i = 0; i < docs.size(); ++i) {
      if (flags[first + i]) {
        ++count, chars += docs[i].size();
        continue;
      }
      if (w != i) docs[w] = std::move(docs[i]);
      if (quality) scores[w] = scores[i];
      ++w;
    }
    docs.resize(w);
    if (quality) scores.resize(w);
  };

  // ---- exact dedup: global, first occurrence in global order stays ----
  StageClock stage;
  double other_seconds = 0;  // laps that belong to no reported stage
  if (opt.exact_dedup) {
    std::vector<Hash128> local(docs.size());
    for (std::size_t i = 0; i < docs.size(); ++i) local[i] = hash128(docs[i]);
    const std::vector<Hash128> all = comm::all_gather_vector(comm, local);
    const std::uint64_t first = comm::exclusive_sum(comm, docs.size());
    drop_flagged(mark_exact_duplicates(all), first, st.exact_duplicates, st.exact_duplicate_chars);
  }
  stage.lap(st.exact_seconds);
  // ---- near dedup: MinHash signatures gathered, LSH in global order ----
  if (opt.near_dedup) {
    const MinHasher hasher(opt.minhash);
    const std::size_t P = std::size_t(opt.minhash.num_perm);
    std::vector<std::uint32_t> local(docs.size() * P);
    for (std::size_t i = 0; i < docs.size(); ++i) hasher.signature(docs[i], local.data() + i * P);
    const std::vector<std::uint32_t> all = comm::all_gather_vector(comm, local);
    const std::uint64_t first = comm::exclusive_sum(comm, docs.size());
    drop_flagged(mark_near_duplicates(all, hasher), first, st.near_duplicates, st.near_duplicate_chars);
  }
  stage.lap(st.near_seconds);
  st.dedup_seconds = clock.seconds() - st.read_seconds;
  // ---- PII, tokenise, EOS ----
  std::vector<std::int32_t> tokens;
  std::vector<std::uint64_t> lengths;
  lengths.reserve(docs.size());
  std::uint64_t tokenised_bytes = 0, kept_bytes = 0;
  for (const auto& d : docs) kept_bytes += d.size();
  progress.start("tokenised", kept_bytes);
  for (std::size_t i = 0; i < docs.size(); ++i) {
    std::string& text = docs[i];
    if (opt.pii) {
      stage.lap(other_seconds);  // tokenising the previous document: not PII
      const PiiCounts c = scrub_pii(text);
      st.pii_docs += c.total() > 0;
      st.pii_emails += c.emails, st.pii_ipv4 += c.ipv4, st.pii_ipv6 += c.ipv6, st.pii_phones += c.phones;
      stage.lap(st.pii_seconds);
    }
    const std::size_t before = tokens.size();
    tokenizer->encode(text, tokens);
    if (opt.append_eos && tokenizer->eos_id() >= 0) tokens.push_back(tokenizer->eos_id());
    lengths.push_back(tokens.size() - before);
    st.chars_written += text.size();
    tokenised_bytes += text.size();
    std::string().swap(text);  // free as we go
    progress.update(i + 1, tokenised_bytes);
  }
  st.tokenize_seconds = clock.seconds() - st.read_seconds - st.dedup_seconds;
  st.documents_written = lengths.size();
  st.tokens_written = tokens.size();

  // ---- totals over ranks, then write ----
  std::vector<std::uint64_t> flat;
  visit_counters(st, [&](const char*, std::uint64_t v) { flat.push_back(v); });
  comm.all_reduce(flat.data(), flat.size());
  std::size_t k = 0;
  visit_counters(st, [&](const char*, std::uint64_t& v) { v = flat[k++]; });
  STRATA_CHECK(st.documents_written > 0, "prepare: no document survived (", st.documents_read,
               " read); relax the filters or check the inputs");

  DatasetInfo info;
  info.tokenizer_name = tokenizer->name();
  info.tokenizer_hash = tokenizer->content_hash();
  info.vocab_size = tokenizer->vocab_size();
  info.eos_id = opt.append_eos ? tokenizer->eos_id() : -1;
  {
    std::string src = std::to_string(files.size()) + " file(s): ";
    for (std::size_t i = 0; i < files.size() && i < 8; ++i) src += (i ? ", " : "") + files[i];
    if (files.size() > 8) src += ", ...";
    info.source = src;
  }
  info.statistics = st.to_json();
  if (root) {
    const fs::path parent = fs::path(opt.output).parent_path();
    std::error_code ec;
    if (!parent.empty()) fs::create_directories(parent, ec);
  }
  comm.barrier();
  stage.lap(other_seconds);  // counters and their all-reduce: not the write
  write_token_dataset(opt.output, comm, info, tokens, lengths, scores);
  stage.lap(st.write_seconds);
  st.seconds = comm::all_reduce_value(comm, clock.seconds(), comm::ReduceOp::max);
  st.read_seconds = comm::all_reduce_value(comm, st.read_seconds, comm::ReduceOp::max);
  st.dedup_seconds = comm::all_reduce_value(comm, st.dedup_seconds, comm::ReduceOp::max);
  st.tokenize_seconds = comm::all_reduce_value(comm, st.tokenize_seconds, comm::ReduceOp::max);
  for (double* t : {&st.normalize_seconds, &st.filter_seconds, &st.quality_seconds, &st.exact_seconds,
                    &st.near_seconds, &st.pii_seconds, &st.write_seconds})
    *t = comm::all_reduce_value(comm, *t, comm::ReduceOp::max);
  if (root && !opt.quiet) {
    std::printf("%s", st.report(opt).c_str());
    std::printf("  output: %s (%s ranks)\n", opt.output.c_str(), std::to_string(comm.size()).c_str());
    std::fflush(stdout);
  }
  return st;
}

}  // namespace strata::data
