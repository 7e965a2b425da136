#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "data_test_util.hpp"
#include "strata/core/error.hpp"
#include "strata/data/format.hpp"
#include "strata/data/hash.hpp"
#include "strata/data/prepare.hpp"
#include "strata/data/tokenizer.hpp"

using namespace strata;
using namespace strata::data;
using testing_util::paragraph;
using testing_util::write_file;

namespace {

PrepareOptions options(const std::string& dir, std::vector<std::string> inputs) {
  PrepareOptions o;
  o.inputs = std::move(inputs);
  o.output = dir + "/out.h5";
  o.progress_interval_s = 0;
  o.quiet = true;
  return o;
}

// The documents of a dataset, decoded with the byte tokenizer (EOS dropped).
std::vector<std::string> documents(const std::string& path) {
  const TokenDataset ds(path);
  const ByteTokenizer t;
  std::vector<std::string> docs;
  for (std::size_t i = 0; i + 1 < ds.doc_offsets().size(); ++i) {
    const auto b = ds.doc_offsets()[i], e = ds.doc_offsets()[i + 1];
    std::vector<std::int32_t> ids(e - b);
    ds.read(b, e - b, ids.data());
    EXPECT_EQ(ids.back(), 256) << "document " << i << " does not end in EOS";
    docs.push_back(t.decode(ids));
  }
  return docs;
}

std::string jsonl_line(const std::string& text) { return nlohmann::json({{"text", text}}).dump() + "\n"; }

}  // namespace

TEST(Prepare, PlantedExactAndNearDuplicatesAreRemovedDistinctDocumentsKept) {
  const std::string dir = testing_util::temp_folder();
  std::string a, b;
  for (int i = 0; i < 20; ++i) a += jsonl_line(paragraph(i));
  b += jsonl_line(paragraph(3));    // exact copy of a's 4th, in another file
  std::string crlf = paragraph(5);  // equal after whitespace normalisation: CRLF, trailing spaces
  for (std::size_t p = crlf.find('\n'); p != std::string::npos; p = crlf.find('\n', p + 4))
    crlf.replace(p, 1, "  \r\n");
  b += jsonl_line(crlf + "\n\n\n");
  b += jsonl_line(paragraph(7) + " -- Anonymous");  // near copy (an attribution added)
  b += jsonl_line(paragraph(50));                   // new
  write_file(dir + "/in/a.jsonl", a);
  write_file(dir + "/in/b.jsonl", b);
  const PrepareStats st = run_prepare(options(dir, {dir + "/in"}), testing_util::one_rank());
  EXPECT_EQ(st.files, 2u);
  EXPECT_EQ(st.documents_read, 24u);
  EXPECT_EQ(st.exact_duplicates, 2u);
  EXPECT_EQ(st.near_duplicates, 1u);
  EXPECT_EQ(st.documents_written, 21u);
  const auto docs = documents(dir + "/out.h5");
  ASSERT_EQ(docs.size(), 21u);
  std::string first = paragraph(0);
  while (first.back() == ' ' || first.back() == '\n') first.pop_back();
  EXPECT_EQ(docs[0], first);  // global order: a.jsonl first
  EXPECT_NE(docs.back().find("lantern") + docs.back().find("river"), 2 * std::string::npos);
}

TEST(Prepare, EachStepCanBeSwitchedOff) {
  const std::string dir = testing_util::temp_folder();
  std::string a;
  for (int i = 0; i < 5; ++i) a += jsonl_line(paragraph(1));
  a += jsonl_line("short one");
  write_file(dir + "/a.jsonl", a);
  PrepareOptions o = options(dir, {dir + "/a.jsonl"});
  o.exact_dedup = o.near_dedup = o.filter = o.pii = o.normalize = false;
  const PrepareStats st = run_prepare(o, testing_util::one_rank());
  EXPECT_EQ(st.documents_written, 6u);
  EXPECT_EQ(st.filtered_total() + st.exact_duplicates + st.near_duplicates, 0u);
}

TEST(Prepare, FiltersAndPiiAreCountedInTheStatisticsAttribute) {
  const std::string dir = testing_util::temp_folder();
  write_file(dir + "/a.jsonl",
             jsonl_line(paragraph(1) + "\nMail me at jane@example.com or call 555-123-4567.") +
                 jsonl_line("too short") + jsonl_line(paragraph(2)));
  const PrepareStats st = run_prepare(options(dir, {dir + "/a.jsonl"}), testing_util::one_rank());
  EXPECT_EQ(st.filtered_docs[std::size_t(FilterRule::min_words)], 1u);
  EXPECT_EQ(st.pii_emails, 1u);
  EXPECT_EQ(st.pii_phones, 1u);
  const TokenDataset ds(dir + "/out.h5");
  const auto j = nlohmann::json::parse(ds.info().statistics);
  EXPECT_EQ(j["filter.min_words.docs"], 1);
  EXPECT_EQ(j["pii_emails"], 1);
  EXPECT_EQ(j["documents_written"], 2);
  EXPECT_NE(documents(dir + "/out.h5")[0].find("Mail me at <EMAIL> or call <PHONE>."), std::string::npos);
}

TEST(Prepare, PlainTextByFileOrBlankLineBlocksAndGzip) {
  const std::string dir = testing_util::temp_folder();
  write_file(dir + "/t/one.txt", paragraph(1) + "\n\n" + paragraph(2) + "\n   \n" + paragraph(3));
  {
    gzFile f = gzopen((dir + "/t/two.txt.gz").c_str(), "wb");
    const std::string p = paragraph(4);
    gzwrite(f, p.data(), unsigned(p.size()));
    gzclose(f);
  }
  PrepareOptions o = options(dir, {dir + "/t"});
  o.filter = false;
  EXPECT_EQ(run_prepare(o, testing_util::one_rank()).documents_written, 2u);
  o.doc_split = DocSplit::blank_line;
  EXPECT_EQ(run_prepare(o, testing_util::one_rank()).documents_written, 4u);
}

TEST(Prepare, MalformedJsonlLinesAndInvalidUtf8AreCountedNotFatal) {
  const std::string dir = testing_util::temp_folder();
  std::string bad_utf8 = jsonl_line(paragraph(2) + " bad XX byte");
  bad_utf8.replace(bad_utf8.find("XX"), 2, "\xff");
  write_file(dir + "/a.jsonl", jsonl_line(paragraph(1)) + "{not json\n" +
                                   R"({"title": "no text"})"
                                   "\n" +
                                   R"({"text": 42})"
                                   "\n" +
                                   bad_utf8);
  PrepareOptions o = options(dir, {dir + "/a.jsonl"});
  o.filter = false;
  const PrepareStats st = run_prepare(o, testing_util::one_rank());
  EXPECT_EQ(st.malformed_lines, 3u);
  EXPECT_EQ(st.invalid_utf8_sequences, 1u);
  EXPECT_EQ(st.documents_written, 2u);
  EXPECT_NE(documents(dir + "/out.h5")[1].find("bad \xEF\xBF\xBD byte"), std::string::npos);
}

TEST(Prepare, JsonlTextFieldIsConfigurable) {
  const std::string dir = testing_util::temp_folder();
  write_file(dir + "/a.jsonl", nlohmann::json({{"content", paragraph(1)}}).dump() + "\n");
  PrepareOptions o = options(dir, {dir + "/a.jsonl"});
  o.text_field = "content";
  EXPECT_EQ(run_prepare(o, testing_util::one_rank()).documents_written, 1u);
}

TEST(Prepare, MissingInputIsNamedAndNoOutputIsLeft) {
  const std::string dir = testing_util::temp_folder();
  try {
    run_prepare(options(dir, {dir + "/missing.jsonl"}), testing_util::one_rank());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.jsonl': No such file or directory"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/out.h5"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/out.h5.tmp"));
}

TEST(Prepare, CorruptGzipIsAClearError) {
  const std::string dir = testing_util::temp_folder();
  {
    gzFile f = gzopen((dir + "/a.jsonl.gz").c_str(), "wb");
    const std::string p = jsonl_line(paragraph(1)) + jsonl_line(paragraph(2));
    gzwrite(f, p.data(), unsigned(p.size()));
    gzclose(f);
  }
  std::filesystem::resize_file(dir + "/a.jsonl.gz", std::filesystem::file_size(dir + "/a.jsonl.gz") - 10);
  try {
    run_prepare(options(dir, {dir + "/a.jsonl.gz"}), testing_util::one_rank());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.jsonl.gz"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/out.h5"));
}

// The output of a fixed input is pinned: the digest of /tokens + /doc_offsets and the
// statistics. The input mixes what every stage acts on (Unicode to normalise, CRLF, documents
// each filter removes, exact and near duplicates, e-mail, IP and phone numbers); the pinned
// content digest is the one the prepare of commit 32a9a0d (before the speed work) gives on the
// same files; the statistics are that commit's plus the quality counters added since (0 here).
// A change of any token, boundary or counter fails here.
TEST(Prepare, OutputOfAFixedInputIsPinned) {
  const std::string dir = testing_util::temp_folder();
  std::string a, b;
  for (int i = 0; i < 150; ++i) {
    std::string p = paragraph(i, 60 + i % 40);
    if (i % 7 == 0) p += "\r\nCaf\u00e9 na\u0131\u0308ve \u00a0 r\u00e9sum\u00e9\u200b.  \n\n\n";
    if (i % 11 == 0) p += " Mail jane.doe@example.org or call +44 20 7946 0958 from 192.168.1.20.";
    if (i % 13 == 0) p = "- a\n- b\n- c\n- d";                                // bullet lines, too short
    if (i % 17 == 0) p += "\n" + paragraph(i, 12) + "\n" + paragraph(i, 12);  // repeated lines
    a += jsonl_line(p);
  }
  for (int i = 0; i < 40; i += 3) b += jsonl_line(paragraph(i, 60 + i % 40));               // exact copies
  for (int i = 1; i < 40; i += 5) b += jsonl_line(paragraph(i, 60 + i % 40) + " -- Anon");  // near copies
  write_file(dir + "/in/a.jsonl", a);
  write_file(dir + "/in/b.jsonl", b);
  write_file(dir + "/in/c.txt", paragraph(999, 300));
  PrepareOptions o = options(dir, {dir + "/in"});
  o.filters.min_words = 20;
  const PrepareStats st = run_prepare(o, testing_util::one_rank());
  EXPECT_GT(st.exact_duplicates, 0u);
  EXPECT_GT(st.near_duplicates, 0u);
  EXPECT_GT(st.filtered_total(), 0u);
  EXPECT_GT(st.pii_docs, 0u);
  EXPECT_GT(st.normalized_docs, 0u);
  const TokenDataset ds(o.output);
  EXPECT_EQ(content_digest(ds), "89a2f86fb431391770b324adcb2acd77")
      << "the tokens or document boundaries changed";
  EXPECT_EQ(hash128(ds.info().statistics).hex(), "2ae1127bc09b731b91868e23103fe929") << ds.info().statistics;
}
