#include "eval/tradeoff.h"

#include <gtest/gtest.h>

#include <regex>

#include "testing/xml_check.h"

namespace lowbit {
namespace {

std::vector<TradeoffPoint> sample() {
  return {{"a", 2, 100, 9, 4.0, 0.1}, {"b", 3, 150, 5, 1.0, 0.5}, {"c", 3, 160, 6, 2.0, 0.4},  // c dominated by b
          {"d", 4, 200, 4, 0.1, 0.9}, {"e", 8, 400, 4, 0.1, 0.9}};                          // e dominated by d
}

TEST(Tradeoff, ParetoFrontierDropsDominatedPoints) {
  EXPECT_EQ(pareto_frontier(sample()), (std::vector<size_t>{0, 1, 3}));
}

TEST(Tradeoff, SvgIsWellFormedWithOnePointPerConfiguration) {
  const std::string svg = tradeoff_svg(sample(), "t <&>");
  auto count = [&](const std::string& pattern) {
    const std::regex re(pattern);
    return std::distance(std::sregex_iterator(svg.begin(), svg.end(), re), std::sregex_iterator());
  };
  EXPECT_EQ(count("<circle class=\"point\""), 5);
  EXPECT_EQ(count("<polyline class=\"pareto\""), 1);
  // The frontier polyline has one vertex per frontier point.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(svg, m, std::regex("class=\"pareto\"[^>]*points=\"([^\"]*)\"")));
  const std::string vertices = m[1].str();
  EXPECT_EQ(std::count(vertices.begin(), vertices.end(), ','), 3);
  EXPECT_NE(svg.find("t &lt;&amp;&gt;"), std::string::npos);  // title escaped
  // Every opened element is closed: self-closing or with a matching end tag.
  EXPECT_EQ(count("<text"), count("</text>"));
  EXPECT_EQ(count("<svg"), count("</svg>"));
  EXPECT_EQ(svg.find("<script"), std::string::npos);
}

TEST(Tradeoff, SvgParsesAsXmlWithHostileLabels) {
  auto points = sample();
  points[0].label = "mixed <3.0> & \"rtn\" 'x'";
  points.push_back({"mixed 3.00 gptq", 3, 140, 5, 0.5, 0.6});  // a mixed row on the frontier
  testing::XmlSummary summary;
  EXPECT_EQ(testing::check_xml(tradeoff_svg(points, "a & b"), &summary), "");
  EXPECT_EQ(summary.root, "svg");
  EXPECT_EQ(summary.elements["circle"], 6);
  EXPECT_EQ(summary.elements["polyline"], 1);
  // The checker itself rejects what a browser would.
  EXPECT_NE(testing::check_xml("<svg><g></svg></g>"), "");
  EXPECT_NE(testing::check_xml("<svg><text>a & b</text></svg>"), "");
  EXPECT_NE(testing::check_xml("<svg x=1/>"), "");
  EXPECT_NE(testing::check_xml("<svg/><svg/>"), "");
}

TEST(Tradeoff, MarkdownMarksFrontierAndComparesWithReference) {
  auto points = sample();
  points[1].reference_kld = 0.8;
  const std::string md = tradeoff_markdown(points, "protocol text");
  EXPECT_NE(md.find("| b ★ |"), std::string::npos);
  EXPECT_NE(md.find("| c |"), std::string::npos);
  EXPECT_NE(md.find("+25.00 %"), std::string::npos);
  EXPECT_NE(md.find("protocol text"), std::string::npos);
}

}  // namespace
}  // namespace lowbit
