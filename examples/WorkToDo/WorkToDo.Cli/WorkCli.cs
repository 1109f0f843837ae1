using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using WorkToDo.Core;

namespace WorkToDo.Cli;

/// <summary>
/// <c>worktodo-cli</c>: one work by <c>--id</c>, or the works whose code starts with <c>--work-code</c>, read through the
/// HTTP API (<c>--call-type http</c>, the default) or straight from PostgreSQL (<c>--call-type db</c>). Both paths print
/// the same text. Every failure is one <c>error: …</c> line on stderr and an exit code from <see cref="ExitCodes"/>.
/// </summary>
public sealed class WorkCli(TextWriter output, TextWriter error, Func<string, string?> environment)
{
    public const string DefaultApi = "http://127.0.0.1:5090";

    public static class ExitCodes
    {
        public const int Success = 0;

        /// <summary>No such work, no match, or the API/database failed or could not be reached.</summary>
        public const int Failure = 1;

        /// <summary>The command line was invalid; nothing was read.</summary>
        public const int Usage = 2;
    }

    public static WorkCli ForConsole() => new(Console.Out, Console.Error, Environment.GetEnvironmentVariable);

    public async Task<int> RunAsync(IReadOnlyList<string> args, CancellationToken cancellationToken = default)
    {
        var id = new Option<long?>("--id") { Description = "Read the work with this id.", CustomParser = ParseId };
        var workCode = new Option<string?>("--work-code") { Description = "List the works whose code starts with this (e.g. api- or consumer-x1)." };
        var callType = new Option<string>("--call-type")
        {
            Description = "Read through the HTTP API (http) or directly from the database (db).",
            DefaultValueFactory = _ => "http",
        };
        callType.AcceptOnlyFromAmong("http", "db");
        var since = new Option<string?>("--since") { Description = "With --work-code: how far back to look, e.g. 30m, 6h, 7d (default 6h)." };
        var api = new Option<string?>("--api") { Description = $"The API's address (default WORKTODO_API, else {DefaultApi})." };
        var postgres = new Option<string?>("--postgres") { Description = "With --call-type db: the Npgsql connection string (default WORKTODO_POSTGRES)." };
        var schema = new Option<string?>("--schema") { Description = $"With --call-type db: the schema (default WORKTODO_SCHEMA, else {WorkNames.DefaultSchema})." };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of text, for scripts." };
        var root = new RootCommand(
            "Reads works of the \"work to do\" example. Exit codes: 0 found, 1 not found or the API/database failed, 2 invalid command line.")
        {
            id, workCode, callType, since, api, postgres, schema, json,
        };
        root.Validators.Add(result =>
        {
            var hasId = result.GetResult(id) is not null;
            var hasCode = result.GetResult(workCode) is not null;
            if (hasId == hasCode) result.AddError("Give exactly one of --id N or --work-code PREFIX.");
            if (hasId && result.GetResult(since) is not null) result.AddError("--since goes with --work-code, not --id.");
        });

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0) return await UsageAsync(parse.Errors[0].Message);
        if (parse.Action is HelpAction) return await parse.InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, cancellationToken);

        var window = Durations.DefaultSearchWindow;
        if (parse.GetValue(since) is { } sinceText && !Durations.TryParse(sinceText, out window))
            return await UsageAsync($"--since must be {Durations.Expected}, not '{sinceText}'.");
        var query = new Query(parse.GetValue(id), parse.GetValue(workCode), window, parse.GetValue(json));

        try
        {
            if (parse.GetValue(callType) == "db")
            {
                var connectionString = parse.GetValue(postgres) ?? environment("WORKTODO_POSTGRES");
                if (string.IsNullOrWhiteSpace(connectionString))
                    return await UsageAsync("--call-type db needs the database: --postgres \"Host=…;Username=…;Database=…\" (or WORKTODO_POSTGRES).");
                var schemaName = parse.GetValue(schema) ?? environment("WORKTODO_SCHEMA") ?? WorkNames.DefaultSchema;
                try
                {
                    WorkStore.ValidateConnectionString(connectionString);
                    WorkStore.ValidateSchema(schemaName);
                }
                catch (ArgumentException e)
                {
                    return await UsageAsync(e.Message);
                }
                return await FromDatabaseAsync(connectionString, schemaName, query, cancellationToken);
            }

            var apiText = parse.GetValue(api) ?? environment("WORKTODO_API") ?? DefaultApi;
            if (!Uri.TryCreate(apiText, UriKind.Absolute, out var apiUri) || apiUri.Scheme is not ("http" or "https"))
                return await UsageAsync($"--api must be the API's http:// address, such as {DefaultApi}, not '{apiText}'.");
            return await FromApiAsync(apiUri, query, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            return await FailAsync($"the API could not be reached ({e.GetBaseException().Message}). Is worktodo-api running at that address (--api, WORKTODO_API)?");
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return await FailAsync("the API did not answer within 30 s.");
        }
        catch (NpgsqlException e)
        {
            return await FailAsync($"the database failed: {e.Message} Check --postgres (WORKTODO_POSTGRES).");
        }
    }

    private sealed record Query(long? Id, string? WorkCode, TimeSpan Window, bool Json);

    private async Task<int> FromApiAsync(Uri api, Query query, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = api, Timeout = TimeSpan.FromSeconds(30) };
        var path = query.Id is { } workId
            ? $"work/{workId.ToString(CultureInfo.InvariantCulture)}"
            : $"work/search?work_code={Uri.EscapeDataString(query.WorkCode!)}&since={(long)query.Window.TotalSeconds}s";
        using var response = await http.GetAsync(path, cancellationToken);
        if (response.StatusCode == HttpStatusCode.NotFound && query.Id is { } missing) return await NotFoundAsync(missing);
        if (!response.IsSuccessStatusCode)
        {
            var detail = await ProblemDetailAsync(response, cancellationToken);
            return await FailAsync($"the API answered {(int)response.StatusCode} {response.ReasonPhrase}{(detail is null ? "." : ": " + detail)}");
        }
        if (query.Id is not null)
        {
            var work = await response.Content.ReadFromJsonAsync(WorkJson.Default.WorkDetail, cancellationToken)
                ?? throw new HttpRequestException("The API answered with an empty body.");
            return await PrintAsync(work, query.Json);
        }
        var works = await response.Content.ReadFromJsonAsync(WorkJson.Default.IReadOnlyListWork, cancellationToken) ?? [];
        return await PrintAsync(works, query);
    }

    private async Task<int> FromDatabaseAsync(string connectionString, string schema, Query query, CancellationToken cancellationToken)
    {
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        var store = new WorkStore(dataSource, schema);
        if (query.Id is { } workId)
        {
            var work = await store.GetAsync(workId, cancellationToken);
            if (work is null) return await NotFoundAsync(workId);
            return await PrintAsync(WorkDetail.From(work, await store.EventsAsync(work.WorkCode, cancellationToken)), query.Json);
        }
        return await PrintAsync(await store.SearchAsync(query.WorkCode, query.Window, 100, cancellationToken), query);
    }

    private async Task<int> PrintAsync(WorkDetail work, bool json)
    {
        if (json)
        {
            await output.WriteLineAsync(JsonSerializer.Serialize(work, WorkJson.Default.WorkDetail));
            return ExitCodes.Success;
        }
        await output.WriteLineAsync($"id          {work.Id}");
        await output.WriteLineAsync($"work_code   {work.WorkCode}");
        await output.WriteLineAsync($"add_up_to   {work.AddUpTo}");
        await output.WriteLineAsync($"done        {(work.Done ? "true" : "false")}");
        await output.WriteLineAsync($"result      {(work.Result is { } r ? r.ToString(CultureInfo.InvariantCulture) : "-")}");
        await output.WriteLineAsync($"created_on  {work.CreatedOn} ({Time(work.CreatedOn)})");
        await output.WriteLineAsync($"updated_on  {work.UpdatedOn} ({Time(work.UpdatedOn)})");
        foreach (var e in work.Events) await output.WriteLineAsync($"event       {Time(e.CreatedOn)}  {e.Variable} = {e.Value}");
        return ExitCodes.Success;
    }

    private async Task<int> PrintAsync(IReadOnlyList<Work> works, Query query)
    {
        if (works.Count == 0)
        {
            return await FailAsync(
                $"no work with a code starting with '{query.WorkCode}' was created in the last {(long)query.Window.TotalSeconds} s.");
        }
        if (query.Json)
        {
            await output.WriteLineAsync(JsonSerializer.Serialize(works, WorkJson.Default.IReadOnlyListWork));
            return ExitCodes.Success;
        }
        var width = Math.Max("WORK_CODE".Length, works.Max(w => w.WorkCode.Length));
        await output.WriteLineAsync($"{"ID",-8}  {"WORK_CODE".PadRight(width)}  ADD_UP_TO  DONE   RESULT  CREATED_ON");
        foreach (var w in works)
        {
            var result = w.Result is { } r ? r.ToString(CultureInfo.InvariantCulture) : "-";
            await output.WriteLineAsync($"{w.Id,-8}  {w.WorkCode.PadRight(width)}  {w.AddUpTo,-9}  {(w.Done ? "true " : "false")}  {result,-6}  {Time(w.CreatedOn)}");
        }
        return ExitCodes.Success;
    }

    private static string Time(long unixSeconds) =>
        DateTimeOffset.FromUnixTimeSeconds(unixSeconds).ToString("yyyy-MM-dd HH:mm:ssZ", CultureInfo.InvariantCulture);

    private static async Task<string?> ProblemDetailAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
            return document.RootElement.TryGetProperty("detail", out var detail) ? detail.GetString() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static long? ParseId(ArgumentResult result)
    {
        var text = result.Tokens[0].Value;
        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0) return value;
        result.AddError($"--id must be a positive whole number, got '{text}'.");
        return null;
    }

    private Task<int> NotFoundAsync(long id) => FailAsync($"work {id} was not found.");

    private async Task<int> FailAsync(string message)
    {
        await error.WriteLineAsync($"error: {message}");
        return ExitCodes.Failure;
    }

    private async Task<int> UsageAsync(string message)
    {
        await error.WriteLineAsync($"error: {message}");
        await error.WriteLineAsync("Try 'worktodo-cli --help'.");
        return ExitCodes.Usage;
    }
}
