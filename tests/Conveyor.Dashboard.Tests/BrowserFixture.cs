using Conveyor.Server.Security;
using Microsoft.Playwright;

namespace Conveyor.Dashboard.Tests;

/// <summary>
/// One headless Debian Chromium (CONVEYOR_TEST_CHROMIUM, installed by ./test.sh; /usr/bin/chromium otherwise) driven by
/// Playwright's own driver from the NuGet package, and two real servers: one without API keys, one with an admin and a
/// producer key. Browser tests share them (one collection, run one after another: the machine has two cores).
/// </summary>
public sealed class BrowserFixture : IAsyncLifetime
{
    public const string AdminKey = "admin-key-0123456789abcdef";
    public const string ProducerKey = "producer-key-0123456789abcdef";

    /// <summary>Every wait in these tests (actions, expectations, navigation) gives up after this.</summary>
    public const float Timeout = 15_000;

    private IPlaywright? _playwright;

    public IBrowser Browser { get; private set; } = null!;
    public TestServer Open { get; private set; } = null!;
    public TestServer Keyed { get; private set; } = null!;

    public static string ChromiumPath()
    {
        var path = Environment.GetEnvironmentVariable("CONVEYOR_TEST_CHROMIUM") is { Length: > 0 } configured ? configured : "/usr/bin/chromium";
        // A missing browser fails the run rather than skipping it: ./test.sh installs Debian's chromium package.
        return File.Exists(path)
            ? path
            : throw new InvalidOperationException($"Chromium is not at {path}: run ./test.sh (it installs Debian's chromium), or set CONVEYOR_TEST_CHROMIUM.");
    }

    public static async Task<(IPlaywright, IBrowser)> LaunchAsync()
    {
        var playwright = await Playwright.CreateAsync();
        var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath(),
            Headless = true,
            Timeout = 60_000,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
        });
        return (playwright, browser);
    }

    public async Task InitializeAsync()
    {
        Assertions.SetDefaultExpectTimeout(Timeout);
        (_playwright, Browser) = await LaunchAsync();
        Open = await TestServer.StartAsync();
        Keyed = await TestServer.StartAsync(
            [ApiKey.Create(AdminKey, ApiKeyRole.Admin), ApiKey.Create(ProducerKey, ApiKeyRole.Producer)], adminKey: AdminKey);
    }

    /// <summary>A fresh tab (own session storage) on the server, failing the test on any script error in the page.</summary>
    public async Task<BrowserPage> NewPageAsync(TestServer server, int width = 1400, int height = 900)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = server.BaseAddress.ToString(),
            ViewportSize = new ViewportSize { Width = width, Height = height },
            TimezoneId = "UTC", // times on the page are shown in the viewer's zone: fix it so assertions on them hold anywhere
        });
        context.SetDefaultTimeout(Timeout);
        context.SetDefaultNavigationTimeout(Timeout);
        var page = await context.NewPageAsync();
        return new BrowserPage(context, page);
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.CloseAsync();
        _playwright?.Dispose();
        if (Open is not null) await Open.DisposeAsync();
        if (Keyed is not null) await Keyed.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class BrowserCollection : ICollectionFixture<BrowserFixture>
{
    public const string Name = "browser";
}

/// <summary>A page with the script errors it raised; disposing it checks there were none.</summary>
public sealed class BrowserPage : IAsyncDisposable
{
    private readonly IBrowserContext _context;
    private readonly List<string> _errors = [];

    public BrowserPage(IBrowserContext context, IPage page)
    {
        _context = context;
        Page = page;
        page.PageError += (_, error) => { lock (_errors) _errors.Add(error); };
        page.Console += (_, message) =>
        {
            // A refused API call (401/403/404 a test provokes) is logged by the browser as a failed resource; scripts must not throw.
            if (message.Type == "error" && !message.Text.StartsWith("Failed to load resource", StringComparison.Ordinal))
                lock (_errors) _errors.Add(message.Text);
        };
    }

    public IPage Page { get; }

    public async ValueTask DisposeAsync()
    {
        await _context.CloseAsync();
        lock (_errors) Assert.True(_errors.Count == 0, "The page raised script errors:\n" + string.Join("\n", _errors));
    }
}
