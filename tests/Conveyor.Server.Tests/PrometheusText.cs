using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Conveyor.Server.Tests;

/// <summary>
/// A strict parser of the Prometheus text format 0.0.4, so tests fail on anything a real scraper would reject:
/// bad names, bad escapes, samples before their TYPE, duplicate series, histograms without +Inf or with falling buckets.
/// </summary>
public static partial class PrometheusText
{
    public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

    [GeneratedRegex("^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
    private static partial Regex MetricName();

    [GeneratedRegex("^[a-zA-Z_][a-zA-Z0-9_]*$")]
    private static partial Regex LabelName();

    public static (IReadOnlyList<Sample> Samples, IReadOnlyDictionary<string, string> Types) Parse(string text)
    {
        var samples = new List<Sample>();
        var types = new Dictionary<string, string>();
        var helps = new HashSet<string>();
        var seen = new HashSet<string>();
        Assert.EndsWith("\n", text);
        foreach (var line in text.Split('\n')[..^1])
        {
            Assert.False(string.IsNullOrWhiteSpace(line), "blank line in exposition");
            if (line.StartsWith('#'))
            {
                var parts = line.Split(' ', 4);
                Assert.True(parts.Length >= 3 && parts[0] == "#", $"bad comment line: {line}");
                Assert.Matches(MetricName(), parts[2]);
                if (parts[1] == "TYPE")
                {
                    Assert.Contains(parts[3], new[] { "counter", "gauge", "histogram", "summary", "untyped" });
                    Assert.True(types.TryAdd(parts[2], parts[3]), $"second TYPE for {parts[2]}");
                }
                else if (parts[1] == "HELP")
                {
                    Assert.True(helps.Add(parts[2]), $"second HELP for {parts[2]}");
                    Assert.DoesNotMatch(@"\\[^\\n]", parts.Length > 3 ? parts[3].Replace(@"\\", "", StringComparison.Ordinal) : "");
                }
                continue;
            }
            var sample = ParseSample(line);
            var family = FamilyOf(sample.Name, types);
            Assert.True(family is not null, $"sample {sample.Name} has no TYPE line before it");
            var key = sample.Name + "{" + string.Join(",", sample.Labels.OrderBy(l => l.Key).Select(l => l.Key + "=" + l.Value)) + "}";
            Assert.True(seen.Add(key), $"duplicate series {key}");
            samples.Add(sample);
        }
        CheckHistograms(samples, types);
        return (samples, types);
    }

    private static string? FamilyOf(string name, Dictionary<string, string> types)
    {
        if (types.ContainsKey(name)) return name;
        foreach (var suffix in new[] { "_bucket", "_sum", "_count" })
        {
            if (name.EndsWith(suffix, StringComparison.Ordinal) && types.TryGetValue(name[..^suffix.Length], out var type) && type == "histogram")
                return name[..^suffix.Length];
        }
        return null;
    }

    private static Sample ParseSample(string line)
    {
        var i = 0;
        while (i < line.Length && line[i] != '{' && line[i] != ' ') i++;
        var name = line[..i];
        Assert.Matches(MetricName(), name);
        var labels = new Dictionary<string, string>();
        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (line[i] != '}')
            {
                var eq = line.IndexOf('=', i);
                var label = line[i..eq];
                Assert.Matches(LabelName(), label);
                Assert.Equal('"', line[eq + 1]);
                var value = new StringBuilder();
                var j = eq + 2;
                for (; line[j] != '"'; j++)
                {
                    if (line[j] == '\\')
                    {
                        j++;
                        value.Append(line[j] switch
                        {
                            '\\' => '\\',
                            '"' => '"',
                            'n' => '\n',
                            _ => throw new Xunit.Sdk.XunitException($"bad escape \\{line[j]} in {line}"),
                        });
                    }
                    else
                    {
                        value.Append(line[j]);
                    }
                }
                Assert.True(labels.TryAdd(label, value.ToString()), $"label {label} twice in {line}");
                i = j + 1;
                if (line[i] == ',') i++;
            }
            i++;
        }
        Assert.Equal(' ', line[i]);
        var number = line[(i + 1)..];
        var parsed = number switch
        {
            "+Inf" => double.PositiveInfinity,
            "-Inf" => double.NegativeInfinity,
            "NaN" => double.NaN,
            _ => double.Parse(number, NumberStyles.Float, CultureInfo.InvariantCulture),
        };
        return new Sample(name, labels, parsed);
    }

    private static void CheckHistograms(List<Sample> samples, Dictionary<string, string> types)
    {
        foreach (var (family, _) in types.Where(t => t.Value == "histogram"))
        {
            var bySeries = samples.Where(s => s.Name == family + "_bucket")
                .GroupBy(s => string.Join(",", s.Labels.Where(l => l.Key != "le").OrderBy(l => l.Key).Select(l => l.Key + "=" + l.Value)));
            foreach (var series in bySeries)
            {
                var buckets = series.Select(s => (Le: s.Labels["le"] == "+Inf" ? double.PositiveInfinity : double.Parse(s.Labels["le"], CultureInfo.InvariantCulture), s.Value)).ToList();
                Assert.Equal(double.PositiveInfinity, buckets[^1].Le);
                for (var k = 1; k < buckets.Count; k++)
                {
                    Assert.True(buckets[k].Le > buckets[k - 1].Le, $"{family} buckets out of order");
                    Assert.True(buckets[k].Value >= buckets[k - 1].Value, $"{family} bucket counts fall");
                }
                var count = samples.Single(s => s.Name == family + "_count" && SameLabels(s, series.First()));
                Assert.Equal(buckets[^1].Value, count.Value);
                Assert.Contains(samples, s => s.Name == family + "_sum" && SameLabels(s, series.First()));
            }
        }
    }

    private static bool SameLabels(Sample a, Sample bucket) =>
        a.Labels.Count == bucket.Labels.Count - 1 && a.Labels.All(l => bucket.Labels.TryGetValue(l.Key, out var v) && v == l.Value);
}
