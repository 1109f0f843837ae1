using System.Text.Json;
using Conveyor.Cli.Output;

namespace Conveyor.Cli.Tests;

public sealed class FormattingTests
{
    [Fact]
    public void Table_columns_are_aligned_and_lines_have_no_trailing_spaces()
    {
        var output = new StringWriter { NewLine = "\n" };

        new TextTable("A", "LONGER", "C").Add("wide value", "x", "").Add("y", "z", "last").WriteTo(output);

        Assert.Equal("A           LONGER  C\nwide value  x\ny           z       last\n", output.ToString());
    }

    [Fact]
    public void Json_is_printed_on_one_line_unescaped_and_cut_to_length()
    {
        using var document = JsonDocument.Parse("""{ "name": "Zoë <x> & y",  "n": [1, 2] }""");

        Assert.Equal("""{"name":"Zoë <x> & y","n":[1,2]}""", Text.Json(document.RootElement));
        Assert.Equal("""{"name":"Zo…""", Text.Json(document.RootElement, 12));
        Assert.Equal("-", Text.Json(null));
    }

    [Theory]
    [InlineData(1_500, "1.5s")]
    [InlineData(61_000, "1m 1s")]
    [InlineData(3_723_000, "1h 2m 3s")]
    [InlineData(90_000_000, "1d 1h 0m")]
    public void Durations_read_naturally(long milliseconds, string expected) =>
        Assert.Equal(expected, Text.Duration(milliseconds));
}
