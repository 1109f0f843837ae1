namespace Conveyor.Cli.CommandLine;

/// <summary>
/// Applies the precedence command line &gt; environment variable &gt; built-in default. A malformed variable is a
/// usage error naming the variable, never silently ignored.
/// </summary>
internal sealed class EnvironmentFallback(Func<string, string?> environment)
{
    public string String(string? commandLine, string variable, string fallback) =>
        commandLine ?? Read(variable) ?? fallback;

    public int Int(int? commandLine, string variable, int fallback, int min, int max)
    {
        if (commandLine is { } value)
        {
            return value;
        }

        var text = Read(variable);
        if (text is null)
        {
            return fallback;
        }

        return Options.TryParseInt(text, min, max, out var parsed)
            ? parsed
            : throw new UsageException($"{variable} must be {Options.Range(min, max)}, got '{text}'.");
    }

    public long Long(long? commandLine, string variable, long fallback, long min, long max)
    {
        if (commandLine is { } value)
        {
            return value;
        }

        var text = Read(variable);
        if (text is null)
        {
            return fallback;
        }

        return Options.TryParseLong(text, min, max, out var parsed)
            ? parsed
            : throw new UsageException($"{variable} must be {Options.Range(min, max)}, got '{text}'.");
    }

    public bool Bool(bool commandLine, string variable)
    {
        if (commandLine) return true;
        return Read(variable) switch
        {
            null or "0" or "false" or "no" => false,
            "1" or "true" or "yes" => true,
            var text => throw new UsageException($"{variable} must be true or false, got '{text}'."),
        };
    }

    /// <summary>An empty variable counts as unset, as `VAR= conveyor …` is a common way to clear one.</summary>
    private string? Read(string variable) => environment(variable) is { Length: > 0 } text ? text.Trim() : null;
}
