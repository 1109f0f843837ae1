using System.Net;

namespace Conveyor.Client;

/// <summary>
/// The one exception the client throws for anything that went wrong talking to the server.
/// The message is the server's own explanation (the problem+json <c>detail</c>) when there is one.
/// </summary>
public sealed class ConveyorException : Exception
{
    public ConveyorException(string message, HttpStatusCode? statusCode = null, bool isTransient = false, Exception? innerException = null)
        : base(message, innerException)
    {
        StatusCode = statusCode;
        IsTransient = isTransient;
    }

    /// <summary>The HTTP status the server answered with; null when no answer arrived (connection failure, timeout).</summary>
    public HttpStatusCode? StatusCode { get; }

    /// <summary>True when the same call may succeed if retried later: network failures, timeouts and 5xx answers.</summary>
    public bool IsTransient { get; }

    /// <summary>The problem+json <c>type</c> URI, when the server sent one.</summary>
    public string? ProblemType { get; init; }

    /// <summary>The problem+json <c>title</c>, when the server sent one.</summary>
    public string? Title { get; init; }
}
