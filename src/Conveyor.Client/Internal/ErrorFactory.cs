using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Conveyor.Client.Internal;

/// <summary>Builds every <see cref="ConveyorException"/> in one place so messages stay consistent and actionable.</summary>
internal static class ErrorFactory
{
    private const int MaxQuotedBody = 200;

    public static ConveyorException Unreachable(Uri server, HttpRequestException inner) =>
        new($"could not reach the Conveyor server at {server} ({Describe(inner)}); check that it is running and the address is right",
            statusCode: null, isTransient: true, inner);

    public static ConveyorException TimedOut(Uri server, Exception inner) =>
        new($"the Conveyor server at {server} did not answer in time; it may be overloaded, try again",
            statusCode: null, isTransient: true, inner);

    public static ConveyorException UnreadableAnswer(HttpStatusCode status, Exception inner) =>
        new($"the server answered {(int)status} but its body could not be read as the expected JSON ({inner.Message}); "
            + "check that the address points at a Conveyor server of a compatible version",
            status, isTransient: false, inner);

    /// <summary>Turns a non-success answer into an exception, reading problem+json when the server sent it.</summary>
    public static async Task<ConveyorException> FromResponseAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var status = response.StatusCode;
        var transient = (int)status >= 500 || status == HttpStatusCode.RequestTimeout || status == HttpStatusCode.TooManyRequests;
        string body;
        try
        {
            body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException)
        {
            body = "";
        }

        var problem = TryReadProblem(response.Content.Headers.ContentType, body);
        var message = problem?.Detail ?? problem?.Title ?? Fallback(response, body);
        return new ConveyorException(message, status, transient)
        {
            ProblemType = problem?.Type,
            Title = problem?.Title,
        };
    }

    private static ProblemBody? TryReadProblem(MediaTypeHeaderValue? contentType, string body)
    {
        // Accept plain application/json too: a proxy or an older server may not label the problem.
        var mediaType = contentType?.MediaType;
        if (body.Length == 0 || mediaType is null || !mediaType.EndsWith("json", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        try
        {
            var problem = JsonSerializer.Deserialize(body, ClientJsonContext.Default.ProblemBody);
            return problem is { Detail: not null } or { Title: not null } ? problem : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Fallback(HttpResponseMessage response, string body)
    {
        var text = new StringBuilder()
            .Append("the server answered ")
            .Append((int)response.StatusCode)
            .Append(' ')
            .Append(response.ReasonPhrase ?? response.StatusCode.ToString());
        var quoted = body.ReplaceLineEndings(" ").Trim();
        if (quoted.Length > 0)
        {
            text.Append(": ").Append(quoted.Length > MaxQuotedBody ? string.Concat(quoted.AsSpan(0, MaxQuotedBody), "…") : quoted);
        }

        return text.ToString();
    }

    private static string Describe(HttpRequestException exception)
    {
        // The innermost message names the actual cause ("Connection refused"), the outer ones repeat the address.
        Exception current = exception;
        while (current.InnerException is not null)
        {
            current = current.InnerException;
        }

        return current.Message.TrimEnd('.');
    }
}
