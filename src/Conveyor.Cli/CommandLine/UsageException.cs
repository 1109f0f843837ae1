namespace Conveyor.Cli.CommandLine;

/// <summary>An invalid input found after parsing (e.g. a bad environment variable); reported as one line with exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
