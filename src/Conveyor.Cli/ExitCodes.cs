namespace Conveyor.Cli;

/// <summary>
/// Process exit codes, documented in <c>conveyor --help</c> so scripts can tell a refusal from a typo from an outage.
/// </summary>
internal static class ExitCodes
{
    public const int Success = 0;

    /// <summary>The server answered with an error (4xx/5xx problem detail), e.g. an unknown job or a stale lease token.</summary>
    public const int ServerError = 1;

    /// <summary>The command line (or an environment variable standing in for it) was invalid; nothing was sent.</summary>
    public const int Usage = 2;

    /// <summary>No answer from the server: connection refused, DNS failure, timeout.</summary>
    public const int Unreachable = 3;

    public const string HelpText =
        "Exit codes: 0 success, 1 the server refused the request, 2 invalid command line, 3 the server could not be reached.";
}
