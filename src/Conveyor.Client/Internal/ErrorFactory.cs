using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Conveyor.Client.Internal;

/// <summary>What a failed call was about, so a 404 or 409 can become the right exception.</summary>
internal readonly record struct CallContext(long? JobId, bool CarriesLeaseToken)
{
    public static readonly CallContext None = default;

    public static CallContext Job(long id) => new(id, CarriesLeaseToken: false);

    public static CallContext Lease(long id) => new(id, CarriesLeaseToken: true);
}

/// <summary>Builds every <see cref="ConveyorException"/> in one place so messages stay consistent and actionable.</summary>
internal static class ErrorFactory
{
    private const int MaxQuotedBody = 200;

    public static ConveyorException Unreachable(Uri server, HttpRequestException inner) =>
        new ServerUnavailableException(
            $"could not reach the Conveyor server at {server} ({Describe(inner)}); check that it is running and the address is right",
            statusCode: null, inner);

    public static ConveyorException TimedOut(Uri server, Exception inner) =>
        new ServerUnavailableException(
            $"the Conveyor server at {server} did not answer in time; it may be overloaded, try again", statusCode: null, inner);

    public static ConveyorException UnreadableAnswer(HttpStatusCode status, Exception inner) =>
        new($"the server answered {(int)status} but its body could not be read as the expected JSON ({inner.Message}); "
            + "check that the address points at a Conveyor server of a compatible version",
            status, isTransient: false, inner);

    public static JobFailedException JobFailed(JobInfo job)
    {
        var last = job.Errors is { Count: > 0 } errors ? errors[^1].Message : null;
        var message = job.State == "cancelled"
            ? $"job {Id(job.Id)} in '{job.Queue}' was cancelled before it produced a result"
            : $"job {Id(job.Id)} in '{job.Queue}' failed after {Id(job.Attempt)} attempt(s) and is dead"
              + (last is null ? "" : $": {last}")
              + "; see its errors with `conveyor get " + Id(job.Id) + " --events`, fix the cause and `conveyor retry " + Id(job.Id) + "`";
        return new JobFailedException(message, job);
    }

    public static JobWaitTimeoutException WaitTimedOut(long id, TimeSpan timeout, JobInfo? lastSeen) =>
        new($"job {Id(id)} did not finish within {timeout.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture)} ms"
            + (lastSeen is null ? "" : $" (it is {lastSeen.State}, attempt {Id(lastSeen.Attempt)})")
            + "; is a worker running for its queue? Wait again with WaitForResultAsync, or cancel it",
            lastSeen, id);

    /// <summary>Turns a non-success answer into an exception, reading problem+json when the server sent it.</summary>
    public static async Task<ConveyorException> FromResponseAsync(
        HttpResponseMessage response, CallContext call, CancellationToken cancellationToken)
    {
        var status = response.StatusCode;
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
        ConveyorException exception = (int)status switch
        {
            404 => new JobNotFoundException(message, call.JobId, status),
            409 when call.CarriesLeaseToken => new LeaseLostException(message, call.JobId, status),
            409 => new JobConflictException(message, call.JobId, status),
            400 or 413 or 415 or 422 => new InvalidRequestException(message, status),
            401 or 403 => new AccessDeniedException(message, status),
            408 or 429 or >= 500 => new ServerUnavailableException(message, status),
            _ => new ConveyorException(message, status),
        };
        exception.ProblemType = problem?.Type;
        exception.Title = problem?.Title;
        exception.ProblemState = problem?.State;
        return exception;
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

    private static string Id(long id) => id.ToString(CultureInfo.InvariantCulture);
}
