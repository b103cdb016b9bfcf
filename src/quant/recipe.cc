#include "quant/recipe.h"

#include <set>
#include <utility>

#include <nlohmann/json.hpp>


namespace lowbit {

namespace {

// Matches name[ni..] against pattern[pi..]; backtracking glob with integer ranges. `failed` holds
// the (star, name position) pairs already known not to match, so "*a*a*a*...b" costs
// O(|pattern| * |name|^2) instead of growing exponentially with the number of stars.
bool match_from(const std::string& p, size_t pi, const std::string& n, size_t ni, std::set<std::pair<size_t, size_t>>& failed) {
  while (pi < p.size()) {
    const char c = p[pi];
    if (c == '*') {
      if (failed.count({pi, ni})) return false;
      for (size_t k = ni; k <= n.size(); ++k)
        if (match_from(p, pi + 1, n, k, failed)) return true;
      failed.insert({pi, ni});
      return false;
    }
    if (c == '[') {
      const size_t close = p.find(']', pi);
      const size_t dash = p.find('-', pi);
      if (close == std::string::npos || dash == std::string::npos || dash > close) return false;
      const long lo = std::stol(p.substr(pi + 1, dash - pi - 1)), hi = std::stol(p.substr(dash + 1, close - dash - 1));
      size_t end = ni;
      while (end < n.size() && std::isdigit(static_cast<unsigned char>(n[end]))) ++end;
      if (end == ni || end - ni > 9) return false;
      const long v = std::stol(n.substr(ni, end - ni));
      if (v < lo || v > hi) return false;
      pi = close + 1;
      ni = end;
      continue;
    }
    if (ni >= n.size() || (c != '?' && c != n[ni])) return false;
    ++pi;
    ++ni;
  }
  return ni == n.size();
}

// Tensor names are a few dozen characters; the matcher recurses once per '*'.
constexpr size_t kMaxPatternBytes = 1024;

Status check_pattern(const std::string& p, const std::string& source, size_t rule) {
  if (p.size() > kMaxPatternBytes)
    return error(ErrorCode::kFormat, "{}: rule {}: pattern of {} bytes (at most {})", source, rule + 1, p.size(),
                 kMaxPatternBytes);
  for (size_t i = p.find('['); i != std::string::npos; i = p.find('[', i + 1)) {
    const size_t close = p.find(']', i);
    const std::string inside = close == std::string::npos ? "" : p.substr(i + 1, close - i - 1);
    const size_t dash = inside.find('-');
    bool ok = dash != std::string::npos && dash > 0 && dash + 1 < inside.size() && inside.size() <= 19;
    for (size_t k = 0; ok && k < inside.size(); ++k) ok = k == dash || std::isdigit(static_cast<unsigned char>(inside[k]));
    if (!ok)
      return error(ErrorCode::kFormat, "{}: rule {}: pattern \"{}\": a range must look like [0-3]", source, rule + 1, p);
  }
  return Status::Ok();
}

// 1-based line and column of a byte offset, for error messages.
std::pair<int, int> line_column(const std::string& text, size_t offset) {
  int line = 1, col = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') ++line, col = 1;
    else ++col;
  }
  return {line, col};
}

Result<FormatSpec> parse_rule_format(const std::string& text) {
  if (text == "keep") return FormatSpec{};
  return parse_format_spec(text);
}

}  // namespace

bool pattern_matches(const std::string& pattern, const std::string& name) {
  std::set<std::pair<size_t, size_t>> failed;
  return match_from(pattern, 0, name, 0, failed);
}

Recipe uniform_recipe(const FormatSpec& format, const std::string& method) {
  Recipe r;
  r.method = method;
  r.rules.push_back({"model.layers.*_proj.weight", format_spec_name(format), format, method});
  return r;
}

Result<Recipe> parse_recipe(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    auto [line, col] = line_column(text, e.byte > 0 ? e.byte - 1 : 0);
    std::string what = e.what();
    const size_t cut = what.find("syntax error");
    return error(ErrorCode::kFormat, "{}:{}:{}: malformed recipe: {}", source, line, col,
                 cut == std::string::npos ? what : what.substr(cut));
  } catch (const nlohmann::json::exception& e) {  // e.g. out_of_range: a number too large for a double
    return error(ErrorCode::kFormat, "{}: malformed recipe: {}", source, e.what());
  }
  if (!j.is_object() || !j.contains("rules") || !j["rules"].is_array())
    return error(ErrorCode::kFormat, "{}: a recipe is an object with a \"rules\" array", source);
  Recipe r;
  if (j.contains("method")) {
    if (!j["method"].is_string()) return error(ErrorCode::kFormat, "{}: \"method\" must be a string", source);
    r.method = j["method"].get<std::string>();
  }
  for (size_t i = 0; i < j["rules"].size(); ++i) {
    const auto& rule = j["rules"][i];
    if (!rule.is_object() || !rule.contains("pattern") || !rule["pattern"].is_string() || !rule.contains("format") ||
        !rule["format"].is_string())
      return error(ErrorCode::kFormat, "{}: rule {} needs string fields \"pattern\" and \"format\"", source, i + 1);
    RecipeRule rr;
    rr.pattern = rule["pattern"].get<std::string>();
    rr.format_text = rule["format"].get<std::string>();
    LOWBIT_RETURN_IF_ERROR(check_pattern(rr.pattern, source, i));
    auto f = parse_rule_format(rr.format_text);
    if (!f.ok()) return f.status().with_context(fmt::format("{}: rule {}", source, i + 1));
    rr.format = *f;
    if (rule.contains("method")) {
      if (!rule["method"].is_string())
        return error(ErrorCode::kFormat, "{}: rule {}: \"method\" must be a string", source, i + 1);
      rr.method = rule["method"].get<std::string>();
    }
    r.rules.push_back(std::move(rr));
  }
  if (r.rules.empty()) return error(ErrorCode::kFormat, "{}: the recipe has no rules", source);
  return r;
}

std::string recipe_to_json(const Recipe& recipe) {
  nlohmann::json j;
  j["method"] = recipe.method;
  j["rules"] = nlohmann::json::array();
  for (const auto& r : recipe.rules) {
    nlohmann::json rule = {{"pattern", r.pattern}, {"format", r.format_text}};
    if (!r.method.empty()) rule["method"] = r.method;
    j["rules"].push_back(rule);
  }
  return j.dump(2) + "\n";
}

uint64_t Plan::total_bytes() const {
  uint64_t b = 0;
  for (const auto& e : entries) b += e.bytes;
  return b;
}

uint64_t Plan::quantized_weights() const {
  uint64_t n = 0;
  for (const auto& e : entries)
    if (e.format.is_quantized()) n += uint64_t(e.rows * e.cols);
  return n;
}

Result<Plan> resolve_plan(const Recipe& recipe, const std::vector<TensorShape>& tensors) {
  Plan plan;
  std::vector<int> hits(recipe.rules.size(), 0);
  for (const auto& t : tensors) {
    PlanEntry e;
    e.name = t.name;
    e.rows = t.rows;
    e.cols = t.cols;
    for (size_t i = 0; i < recipe.rules.size(); ++i) {
      if (!pattern_matches(recipe.rules[i].pattern, t.name)) continue;
      e.rule = int(i);
      e.format = recipe.rules[i].format;
      e.method = recipe.rules[i].method.empty() ? recipe.method : recipe.rules[i].method;
      ++hits[i];
      break;
    }
    // A group larger than the row is one shorter group, as the last group of any ragged row is.
    if (e.format.is_quantized() && (t.rows <= 0 || t.cols <= 0))
      return error(ErrorCode::kInvalidArgument, "tensor {} [{}, {}] (rule \"{}\") has no weights to quantize", t.name,
                   t.rows, t.cols, recipe.rules[size_t(e.rule)].pattern);
    e.bytes = format_bytes(e.format, t.rows, t.cols);
    plan.entries.push_back(std::move(e));
  }
  for (size_t i = 0; i < hits.size(); ++i)
    if (hits[i] == 0)
      plan.warnings.push_back(fmt::format("rule {} (pattern \"{}\") matches no tensor", i + 1, recipe.rules[i].pattern));
  return plan;
}

}  // namespace lowbit
