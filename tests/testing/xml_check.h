// A strict little XML well-formedness check for the SVG files lowbit writes (no DTDs, no CDATA):
// every element closes in order, attributes are name="value" with no raw '<' or '&' outside
// entities, text holds only the five predefined entities or numeric ones, and there is exactly
// one root element. Returns "" when well formed, else what is wrong and where.
#pragma once

#include <cctype>
#include <map>
#include <string>
#include <vector>

namespace lowbit::testing {

struct XmlSummary {
  std::string root;
  std::map<std::string, int> elements;  // element name -> count
};

inline std::string check_entities(const std::string& text, size_t at) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '<') return "raw '<' in text or attribute at " + std::to_string(at + i);
    if (text[i] != '&') continue;
    const size_t end = text.find(';', i);
    if (end == std::string::npos) return "unterminated entity at " + std::to_string(at + i);
    const std::string name = text.substr(i + 1, end - i - 1);
    const bool numeric = name.size() > 1 && name[0] == '#';
    if (!numeric && name != "lt" && name != "gt" && name != "amp" && name != "quot" && name != "apos")
      return "unknown entity &" + name + "; at " + std::to_string(at + i);
    i = end;
  }
  return "";
}

inline std::string check_xml(const std::string& doc, XmlSummary* summary = nullptr) {
  std::vector<std::string> open;
  XmlSummary s;
  size_t i = 0;
  int roots = 0;
  while (i < doc.size()) {
    const size_t lt = doc.find('<', i);
    const std::string text = doc.substr(i, lt == std::string::npos ? std::string::npos : lt - i);
    if (open.empty()) {
      for (char c : text)
        if (!std::isspace(static_cast<unsigned char>(c))) return "text outside the root element at " + std::to_string(i);
    } else if (std::string e = check_entities(text, i); !e.empty()) {
      return e;
    }
    if (lt == std::string::npos) break;
    if (doc.compare(lt, 4, "<!--") == 0) {
      const size_t end = doc.find("-->", lt);
      if (end == std::string::npos) return "unterminated comment";
      i = end + 3;
      continue;
    }
    if (doc.compare(lt, 2, "<?") == 0) {
      const size_t end = doc.find("?>", lt);
      if (end == std::string::npos || !open.empty() || roots > 0) return "misplaced processing instruction";
      i = end + 2;
      continue;
    }
    const size_t gt = doc.find('>', lt);
    if (gt == std::string::npos) return "unterminated tag at " + std::to_string(lt);
    std::string tag = doc.substr(lt + 1, gt - lt - 1);
    i = gt + 1;
    if (!tag.empty() && tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (open.empty() || open.back() != name) return "</" + name + "> does not close the open element";
      open.pop_back();
      continue;
    }
    const bool self_closing = !tag.empty() && tag.back() == '/';
    if (self_closing) tag.pop_back();
    size_t p = 0;
    while (p < tag.size() && (std::isalnum(static_cast<unsigned char>(tag[p])) || tag[p] == '-' || tag[p] == ':' || tag[p] == '_')) ++p;
    const std::string name = tag.substr(0, p);
    if (name.empty()) return "tag without a name at " + std::to_string(lt);
    // Attributes: name="value" separated by whitespace.
    while (p < tag.size()) {
      while (p < tag.size() && std::isspace(static_cast<unsigned char>(tag[p]))) ++p;
      if (p == tag.size()) break;
      const size_t eq = tag.find('=', p);
      if (eq == std::string::npos || eq + 1 >= tag.size() || (tag[eq + 1] != '"' && tag[eq + 1] != '\''))
        return "malformed attribute in <" + name + "> at " + std::to_string(lt);
      const size_t close = tag.find(tag[eq + 1], eq + 2);
      if (close == std::string::npos) return "unterminated attribute value in <" + name + ">";
      if (std::string e = check_entities(tag.substr(eq + 2, close - eq - 2), lt); !e.empty()) return e;
      p = close + 1;
    }
    if (open.empty()) {
      if (++roots > 1) return "more than one root element";
      s.root = name;
    }
    ++s.elements[name];
    if (!self_closing) open.push_back(name);
  }
  if (!open.empty()) return "<" + open.back() + "> is never closed";
  if (roots != 1) return "no root element";
  if (summary) *summary = s;
  return "";
}

}  // namespace lowbit::testing
