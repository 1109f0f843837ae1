using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using Conveyor.Cli.Commands;
using Conveyor.Server;

namespace Conveyor.Cli.CommandLine;

// Inside the namespace on purpose: Conveyor.Core's public JobEvent, QueueInfo, StateCounts… live in the enclosing
// 'Conveyor' namespace and would otherwise win over the client's wire types of the same names.
using Conveyor.Client;

/// <summary>
/// The <c>conveyor</c> command tree. Parsing and binding live here; the commands themselves take a validated
/// options object and a <see cref="TextWriter"/>. Every failure ends as one <c>error: …</c> line on stderr
/// and an exit code from <see cref="ExitCodes"/>.
/// </summary>
internal sealed class CliApp(
    TextWriter output,
    TextWriter error,
    Func<string, string?> environment,
    Func<Uri, string?, ConveyorClient> clientFactory,
    Func<ServerOptions, CancellationToken, Task<int>> runServer)
{
    public const string ServerVariable = "CONVEYOR_SERVER";
    public const string DefaultServer = "http://127.0.0.1:5080";
    public const string ApiKeyVariable = "CONVEYOR_API_KEY";

    private static readonly char[] LineBreaks = ['\n', '\r', '\t'];
    private static readonly string[] JobStates = ["scheduled", "available", "running", "completed", "dead", "cancelled"];

    private readonly EnvironmentFallback _fallback = new(environment);

    /// <summary>The real thing: console streams, process environment, HTTP, and the server.</summary>
    public static CliApp ForConsole() =>
        new(Console.Out, Console.Error, Environment.GetEnvironmentVariable,
            (server, apiKey) => new ConveyorClient(new ConveyorClientOptions { BaseAddress = server, ApiKey = apiKey }), ConveyorServer.RunAsync);

    public async Task<int> RunAsync(IReadOnlyList<string> args, CancellationToken cancellationToken = default)
    {
        var parseResult = BuildRootCommand().Parse(args);
        if (parseResult.Action is ParseErrorAction)
        {
            return UsageError(parseResult.Errors[0].Message, parseResult);
        }

        var configuration = new InvocationConfiguration
        {
            Output = output,
            Error = error,

            // Failures are reported below as one line each, not as a stack trace.
            EnableDefaultExceptionHandler = false,

            // No signal handling here: `serve` shuts down gracefully on SIGTERM/Ctrl-C by itself, and
            // System.CommandLine would otherwise force exit code 143 if that takes longer than its timeout.
            ProcessTerminationTimeout = null,
        };

        try
        {
            return await parseResult.InvokeAsync(configuration, cancellationToken).ConfigureAwait(false);
        }
        catch (UsageException exception)
        {
            return UsageError(exception.Message, parseResult);
        }
        catch (ConveyorException exception)
        {
            await error.WriteLineAsync($"error: {OneLine(exception.Message)}").ConfigureAwait(false);
            return exception.StatusCode is null ? ExitCodes.Unreachable : ExitCodes.ServerError;
        }
    }

    internal RootCommand BuildRootCommand()
    {
        var root = new RootCommand(
            "Conveyor: a durable job queue server (conveyor serve) and a client for it (every other command). "
            + ExitCodes.HelpText)
        {
            BuildServe(),
            BuildEnqueue(),
            BuildLease(),
            BuildComplete(),
            BuildFail(),
            BuildGet(),
            BuildJobAction("cancel", "Cancel a job that has not finished.", JobCommands.CancelAsync),
            BuildJobAction("retry", "Make a dead or cancelled job available again, with its attempts reset.", JobCommands.RetryAsync),
            BuildJobs(),
            BuildQueues(),
            BuildQueueAction("pause", "Pause a queue: it keeps accepting jobs but leases none.", QueueCommands.PauseAsync),
            BuildQueueAction("resume", "Resume a paused queue.", QueueCommands.ResumeAsync),
            BuildStats(),
            WorkCommand.Build(SetClientAction),
            ScheduleCommands.Build(SetClientAction, SetClientAction, SetClientAction),
            SubmissionCommands.BuildSubmit(SetClientAction),
            SubmissionCommands.BuildShow(SetClientAction),
        };
        return root;
    }

    private Command BuildServe()
    {
        var host = Options.String("--host", Described("Address to listen on", ServeVariables.Host, ServerOptions.DefaultHost));
        var port = Options.Int(
            "--port", Described("Port to listen on; 0 picks a free one", ServeVariables.Port, ServerOptions.DefaultPort), 0, 65535);
        var data = Options.String(
            "--data", Described("Directory for the database file", ServeVariables.Data, ServerOptions.DefaultDataDirectory));
        var maxJob = Options.Long(
            "--max-job-bytes",
            Described("Largest single-job request; larger ones get 413", ServeVariables.MaxJobBytes, ServerOptions.DefaultMaxJobBytes),
            1);
        var maxBody = Options.Long(
            "--max-body-bytes",
            Described("Largest request body, e.g. a batch", ServeVariables.MaxBodyBytes, ServerOptions.DefaultMaxBodyBytes),
            1);

        var postgres = Options.String(
            "--postgres",
            Described("Keep jobs in PostgreSQL (an Npgsql connection string) instead of the SQLite file; servers sharing it share the queues",
                ServeVariables.Postgres, "none: SQLite in --data"));
        var postgresSchema = Options.String(
            "--postgres-schema", Described("Postgres schema for Conveyor's tables", ServeVariables.PostgresSchema, ServerOptions.DefaultPostgresSchema));

        var amqp = Options.String(
            "--amqp", Described("RabbitMQ broker for --ingest, as amqp://user:password@host:5672/vhost", ServeVariables.Amqp, "none"));
        var ingest = new Option<string[]>("--ingest")
        {
            Description = Described(
                "Consume a RabbitMQ queue into a Conveyor queue, as rabbit-queue=conveyor-queue; repeatable (the variable: comma-separated)",
                ServeVariables.Ingest, "none"),
            Arity = ArgumentArity.ZeroOrMore,
        };

        var apiKeys = Options.String(
            "--api-keys", Described("API keys with roles, as key:role[,key:role]; roles producer, consumer, admin", ServeVariables.ApiKeys, "none"));
        var allowAnonymous = Options.Flag(
            "--allow-anonymous", Described("Listen beyond loopback without API keys", ServeVariables.AllowAnonymous, "off"));
        var retention = Options.String(
            "--retention", Described("Keep finished jobs this long unless their queue says otherwise (0: forever)", ServeVariables.Retention, "7d"));
        var logFormat = Options.String("--log-format", Described("Console logs as text or json", ServeVariables.LogFormat, "text"));
        var deliverySecrets = Options.String("--delivery-secrets",
            Described("Environment variables that push destinations may use in headers as {{NAME}}, comma-separated", ServeVariables.DeliverySecrets, "none"));
        var deliveryConcurrency = Options.Int("--delivery-concurrency",
            Described("Push deliveries in flight at once", ServeVariables.DeliveryConcurrency, 64), 1, 10_000);
        var deliveryTimeout = Options.String("--delivery-timeout",
            Described("Timeout of one push delivery when its destination sets none", ServeVariables.DeliveryTimeout, "30s"));

        var objectStore = Options.String("--object-store",
            Described("Directory holding submission chunk bodies (<prefix>/<index>-in.bin, -out.bin)", ServeVariables.ObjectStore, "objects in --data"));
        var maxSubmissionAge = Options.String("--max-submission-age",
            Described("Keep finished submissions and their chunks this long (0: forever)", ServeVariables.MaxSubmissionAge, "7d"));

        var command = new Command("serve", "Run the Conveyor server until SIGTERM or Ctrl-C.")
        {
            host, port, data, maxJob, maxBody, postgres, postgresSchema, amqp, ingest, apiKeys, allowAnonymous, retention, logFormat,
            deliverySecrets, deliveryConcurrency, deliveryTimeout, objectStore, maxSubmissionAge,
        };
        command.SetAction((parseResult, cancellationToken) =>
        {
            var options = ServeCommand.Resolve(
                parseResult.GetValue(host),
                parseResult.GetValue(port),
                parseResult.GetValue(data),
                parseResult.GetValue(maxJob),
                parseResult.GetValue(maxBody),
                _fallback,
                parseResult.GetValue(postgres),
                parseResult.GetValue(postgresSchema),
                parseResult.GetValue(amqp),
                parseResult.GetValue(ingest),
                new ServeSecurity(
                    parseResult.GetValue(apiKeys), parseResult.GetValue(allowAnonymous), parseResult.GetValue(retention), parseResult.GetValue(logFormat)),
                new ServeDelivery(parseResult.GetValue(deliverySecrets), parseResult.GetValue(deliveryConcurrency), parseResult.GetValue(deliveryTimeout)),
                new ServeSubmissions(parseResult.GetValue(objectStore), parseResult.GetValue(maxSubmissionAge)));
            return ServeCommand.RunAsync(options, runServer, cancellationToken);
        });
        return command;
    }

    private Command BuildEnqueue()
    {
        var queue = Options.Queue();
        var kind = Options.String("--kind", "What the job is, e.g. email.send [default: default]");
        var payload = Options.JsonValue("--payload", "The job's input as JSON, e.g. '{\"to\":\"a@b.c\"}'");
        var priority = Options.Int("--priority", "Higher runs first, -1000 to 1000 [default: 0]");
        var delay = Options.Long("--delay-ms", "Run no earlier than this many milliseconds from now", 0);
        var runAt = Options.Timestamp("--run-at", "Run no earlier than this ISO-8601 time (UTC unless an offset is given)");
        var maxAttempts = Options.Int("--max-attempts", "Attempts before the job is dead [default: the server's, 25]", 1);
        var idempotencyKey = Options.String(
            "--idempotency-key", "Enqueue at most once per key in this queue; a repeat returns the existing job");
        var partitionKey = Options.String("--partition-key", "Jobs sharing this key run one at a time, in order");
        var tags = new Option<string[]>("--tag") { Description = "A tag for searching; repeat for several" };
        var webhooks = new Option<string[]>("--webhook")
        {
            Description = "Push delivery: the server POSTs the payload to this http(s) address itself; repeat for several",
        };
        var json = Options.Json();

        var command = new Command("enqueue", "Add a job to a queue.")
        {
            queue, kind, payload, priority, delay, runAt, maxAttempts, idempotencyKey, partitionKey, tags, webhooks, json,
        };
        command.Validators.Add(result =>
        {
            if (result.GetResult(delay) is not null && result.GetResult(runAt) is not null)
            {
                result.AddError("Give either --delay-ms or --run-at, not both.");
            }
        });
        SetClientAction(
            command,
            parseResult => new EnqueueOptions(
                parseResult.GetRequiredValue(queue),
                new EnqueueRequest
                {
                    Kind = parseResult.GetValue(kind),
                    Payload = parseResult.GetValue(payload),
                    Priority = parseResult.GetValue(priority),
                    DelayMs = parseResult.GetValue(delay),
                    RunAt = parseResult.GetValue(runAt),
                    MaxAttempts = parseResult.GetValue(maxAttempts),
                    IdempotencyKey = parseResult.GetValue(idempotencyKey),
                    PartitionKey = parseResult.GetValue(partitionKey),
                    Tags = parseResult.GetValue(tags) is { Length: > 0 } given ? given : null,
                    Destinations = parseResult.GetValue(webhooks) is { Length: > 0 } hooks ? [.. hooks.Select(url => new PushDestination { Type = "http", Url = url, Method = "POST" })] : null,
                },
                parseResult.GetValue(json)),
            JobCommands.EnqueueAsync);
        return command;
    }

    private Command BuildLease()
    {
        var queue = Options.Queue();
        var max = Options.Int("--max", "Most jobs to lease at once, up to 1000 [default: 1]", 1);
        var leaseMs = Options.Int("--lease-ms", "How long the lease lasts without a heartbeat, 1000 to 43200000 [default: 30000]", 1);
        var waitMs = Options.Int("--wait-ms", "How long to wait for a job when none is available, up to 30000 [default: 0]", 0);
        var worker = Options.String("--worker", "A name for the lease's owner, shown in `conveyor get`");
        var json = Options.Json();

        var command = new Command(
            "lease",
            "Take jobs from a queue to work on; finish each with `conveyor complete` or `conveyor fail` and its token. "
            + "Exits 0 with a message when no job is available.")
        {
            queue, max, leaseMs, waitMs, worker, json,
        };
        SetClientAction(
            command,
            parseResult => new LeaseOptions(
                parseResult.GetRequiredValue(queue),
                parseResult.GetValue(max) ?? 1,
                parseResult.GetValue(leaseMs) ?? 30_000,
                parseResult.GetValue(waitMs) ?? 0,
                parseResult.GetValue(worker),
                parseResult.GetValue(json)),
            JobCommands.LeaseAsync);
        return command;
    }

    private Command BuildComplete()
    {
        var id = Options.JobId();
        var token = LeaseToken();
        var result = Options.JsonValue("--result", "The job's output as JSON");
        var json = Options.Json();

        var command = new Command("complete", "Mark a leased job completed.") { id, token, result, json };
        SetClientAction(
            command,
            parseResult => new CompleteOptions(
                parseResult.GetValue(id), parseResult.GetRequiredValue(token), parseResult.GetValue(result), parseResult.GetValue(json)),
            JobCommands.CompleteAsync);
        return command;
    }

    private Command BuildFail()
    {
        var id = Options.JobId();
        var token = LeaseToken();
        var message = new Option<string>("--error") { Description = "What went wrong", Required = true };
        var retryIn = Options.Long("--retry-in-ms", "Retry after this many milliseconds instead of the server's backoff", 0);
        var dead = Options.Flag("--dead", "Do not retry: the job is dead now");
        var json = Options.Json();

        var command = new Command("fail", "Report that a leased job's attempt failed; it is retried while attempts remain.")
        {
            id, token, message, retryIn, dead, json,
        };
        SetClientAction(
            command,
            parseResult => new FailOptions(
                parseResult.GetValue(id),
                parseResult.GetRequiredValue(token),
                parseResult.GetRequiredValue(message),
                parseResult.GetValue(retryIn),
                parseResult.GetValue(dead),
                parseResult.GetValue(json)),
            JobCommands.FailAsync);
        return command;
    }

    private Command BuildGet()
    {
        var id = Options.JobId();
        var events = Options.Flag("--events", "Also show the job's history");
        var json = Options.Json();

        var command = new Command("get", "Show one job.") { id, events, json };
        SetClientAction(
            command,
            parseResult => new GetJobOptions(parseResult.GetValue(id), parseResult.GetValue(events), parseResult.GetValue(json)),
            JobCommands.GetAsync);
        return command;
    }

    private Command BuildJobAction(
        string name, string description, Func<ConveyorClient, JobActionOptions, TextWriter, CancellationToken, Task<int>> run)
    {
        var id = Options.JobId();
        var json = Options.Json();
        var command = new Command(name, description) { id, json };
        SetClientAction(command, parseResult => new JobActionOptions(parseResult.GetValue(id), parseResult.GetValue(json)), run);
        return command;
    }

    private Command BuildJobs()
    {
        var queue = Options.String("--queue", "Only jobs in this queue");
        var state = Options.String("--state", $"Only jobs in this state: {string.Join(", ", JobStates)}");
        state.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<string?>() is { } given && !JobStates.Contains(given))
            {
                result.AddError($"--state must be one of {string.Join(", ", JobStates)}; got '{given}'.");
            }
        });
        var kind = Options.String("--kind", "Only jobs of this kind");
        var tag = Options.String("--tag", "Only jobs with this tag");
        var limit = Options.Int("--limit", "Most jobs to show [default: the server's]", 1);
        var cursor = Options.String("--cursor", "Continue from a previous page (printed as 'more: --cursor …')");
        var json = Options.Json();

        var command = new Command("jobs", "Search jobs, newest first.") { queue, state, kind, tag, limit, cursor, json };
        SetClientAction(
            command,
            parseResult => new SearchJobsOptions(
                new JobSearch
                {
                    Queue = parseResult.GetValue(queue),
                    State = parseResult.GetValue(state),
                    Kind = parseResult.GetValue(kind),
                    Tag = parseResult.GetValue(tag),
                },
                parseResult.GetValue(limit),
                parseResult.GetValue(cursor),
                parseResult.GetValue(json)),
            JobCommands.SearchAsync);
        return command;
    }

    private Command BuildQueues()
    {
        var json = Options.Json();
        var command = new Command("queues", "List queues with their job counts per state.") { json };
        SetClientAction(command, parseResult => new ListOptions(parseResult.GetValue(json)), QueueCommands.ListAsync);
        return command;
    }

    private Command BuildQueueAction(
        string name, string description, Func<ConveyorClient, QueueActionOptions, TextWriter, CancellationToken, Task<int>> run)
    {
        var queue = Options.Queue();
        var json = Options.Json();
        var command = new Command(name, description) { queue, json };
        SetClientAction(
            command, parseResult => new QueueActionOptions(parseResult.GetRequiredValue(queue), parseResult.GetValue(json)), run);
        return command;
    }

    private Command BuildStats()
    {
        var json = Options.Json();
        var command = new Command("stats", "Show server-wide job counts and totals since start.") { json };
        SetClientAction(command, parseResult => new ListOptions(parseResult.GetValue(json)), QueueCommands.StatsAsync);
        return command;
    }

    /// <summary>Adds <c>--server</c> and an action that binds the options, then runs the command with a client for that server.</summary>
    private void SetClientAction<TOptions>(
        Command command,
        Func<ParseResult, TOptions> bind,
        Func<ConveyorClient, TOptions, TextWriter, CancellationToken, Task<int>> run)
    {
        var server = new Option<Uri?>("--server")
        {
            Description = Described("The Conveyor server's address", ServerVariable, DefaultServer),
            CustomParser = result => ParseServer(result),
        };
        var apiKey = Options.String("--api-key", Described("API key for a server that requires one", ApiKeyVariable, "none"));
        command.Add(server);
        command.Add(apiKey);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var options = bind(parseResult);
            var address = parseResult.GetValue(server) ?? ServerFromEnvironment();
            var key = _fallback.String(parseResult.GetValue(apiKey), ApiKeyVariable, "") is { Length: > 0 } k ? k : null;
            using var client = clientFactory(address, key);
            return await run(client, options, output, cancellationToken).ConfigureAwait(false);
        });
    }

    private Uri ServerFromEnvironment()
    {
        var text = _fallback.String(null, ServerVariable, DefaultServer);
        return TryParseServer(text, out var uri)
            ? uri
            : throw new UsageException($"{ServerVariable} must be an http:// or https:// address such as {DefaultServer}, got '{text}'.");
    }

    private static Uri? ParseServer(ArgumentResult result)
    {
        var text = result.Tokens[0].Value;
        if (TryParseServer(text, out var uri))
        {
            return uri;
        }

        result.AddError($"--server must be an http:// or https:// address such as {DefaultServer}, got '{text}'.");
        return null;
    }

    private static bool TryParseServer(string text, out Uri uri) =>
        Uri.TryCreate(text, UriKind.Absolute, out uri!) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps);

    private static Option<string> LeaseToken() =>
        new("--token") { Description = "The lease token printed by `conveyor lease`", Required = true };

    private static string Described(string text, string variable, object fallback) => $"{text} [env: {variable}] [default: {fallback}]";

    private int UsageError(string message, ParseResult parseResult)
    {
        // One line, naming the help that would have prevented it.
        var names = new Stack<string>();
        for (var result = parseResult.CommandResult; result.Parent is CommandResult parent; result = parent)
        {
            names.Push(result.Command.Name);
        }

        var help = names.Count == 0 ? "conveyor --help" : $"conveyor {string.Join(' ', names)} --help";
        error.WriteLine($"error: {OneLine(message)} See '{help}'.");
        return ExitCodes.Usage;
    }

    /// <summary>Messages may span lines (System.CommandLine's, a server's); a script reading stderr gets exactly one.</summary>
    private static string OneLine(string message) =>
        string.Join(' ', message.Split(LineBreaks, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
