using System.Text.Json.Nodes;
using Conveyor.Server.Security;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Conveyor.Dashboard.Tests;

/// <summary>Runs only when CONVEYOR_SCREENSHOTS names a directory (docs/images for the README).</summary>
public sealed class ScreenshotFactAttribute : FactAttribute
{
    public ScreenshotFactAttribute()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CONVEYOR_SCREENSHOTS")))
            Skip = "Set CONVEYOR_SCREENSHOTS=<dir> (and CONVEYOR_SCREENSHOTS_SERVER=<url> of a server with traffic) to regenerate docs/images.";
    }
}

/// <summary>
/// The README's pictures: <c>CONVEYOR_SCREENSHOTS=$PWD/docs/images dotnet test tests/Conveyor.Dashboard.Tests --filter Screenshots</c>.
/// With CONVEYOR_SCREENSHOTS_SERVER the pages come from that server (give it some traffic for 15 minutes first, so the
/// charts have a history); otherwise from a fresh server seeded here. The sign-in page comes from a server with keys.
/// </summary>
public sealed class Screenshots
{
    [ScreenshotFact]
    public async Task Take_the_README_screenshots()
    {
        var directory = Environment.GetEnvironmentVariable("CONVEYOR_SCREENSHOTS")!;
        Directory.CreateDirectory(directory);
        Assertions.SetDefaultExpectTimeout(BrowserFixture.Timeout);
        var (playwright, browser) = await BrowserFixture.LaunchAsync();
        using var _ = playwright;
        await using var own = await TestServer.StartAsync();
        await using var keyed = await TestServer.StartAsync([ApiKey.Create(BrowserFixture.AdminKey, ApiKeyRole.Admin)], BrowserFixture.AdminKey);
        var external = Environment.GetEnvironmentVariable("CONVEYOR_SCREENSHOTS_SERVER");
        using var http = external is { Length: > 0 } ? new HttpClient { BaseAddress = new Uri(external) } : null;
        var api = http ?? own.Http;
        var baseUrl = external is { Length: > 0 } ? external : own.BaseAddress.ToString();
        if (http is null) await SeedAsync(own.Http);

        async Task<IPage> Open(string url, int width = 1440, int height = 900, string? root = null)
        {
            var context = await browser.NewContextAsync(new() { BaseURL = root ?? baseUrl, ViewportSize = new() { Width = width, Height = height }, ColorScheme = ColorScheme.Light });
            context.SetDefaultTimeout(BrowserFixture.Timeout);
            var page = await context.NewPageAsync();
            await page.GotoAsync(url);
            return page;
        }

        var overview = await Open("/");
        await Expect(overview.Locator("tr[data-queue]").First).ToBeVisibleAsync();
        await Expect(overview.Locator(".chart path.line").First).ToBeAttachedAsync();
        await overview.ScreenshotAsync(new() { Path = Path.Combine(directory, "overview.png"), FullPage = true });

        var jobs = await Open("/#/jobs");
        await Expect(jobs.Locator("tr[data-job]").First).ToBeVisibleAsync();
        await jobs.ScreenshotAsync(new() { Path = Path.Combine(directory, "jobs.png") });

        var failed = await api.Send(HttpMethod.Get, "/v1/jobs?state=dead&limit=1");
        var id = (long)failed!["jobs"]!.AsArray().First()!["id"]!;
        var detail = await Open($"/#/jobs/{id}");
        await Expect(detail.Locator("[data-section='events'] li").First).ToBeVisibleAsync();
        await detail.Locator("[data-section='errors'] summary").First.ClickAsync();
        await detail.ScreenshotAsync(new() { Path = Path.Combine(directory, "job.png"), FullPage = true });

        var signIn = await Open("/", 1000, 640, keyed.BaseAddress.ToString());
        await Expect(signIn.GetByLabel("API key")).ToBeVisibleAsync();
        await signIn.ScreenshotAsync(new() { Path = Path.Combine(directory, "sign-in.png") });

        var narrow = await Open("/", 390, 844);
        await Expect(narrow.Locator("tr[data-queue]").First).ToBeVisibleAsync();
        await Expect(narrow.Locator(".chart path.line").First).ToBeAttachedAsync();
        await narrow.ScreenshotAsync(new() { Path = Path.Combine(directory, "narrow.png"), FullPage = true });
        await browser.CloseAsync();
    }

    /// <summary>A few queues with jobs in every state, some failures with stacks, for a server without traffic of its own.</summary>
    private static async Task SeedAsync(HttpClient http)
    {
        foreach (var (queue, kind, count) in new[] { ("emails", "email.send", 40), ("thumbnails", "image.resize", 25), ("billing", "charge.capture", 12) })
        {
            for (var i = 0; i < count; i++)
                await http.Enqueue(queue, new JsonObject { ["kind"] = kind, ["payload"] = new JsonObject { ["n"] = i }, ["tags"] = new JsonArray("eu") }.ToJsonString());
            for (var i = 0; i < count / 2; i++) await http.Complete(await http.Lease(queue));
            await http.Lease(queue);
        }
        for (var i = 0; i < 3; i++)
        {
            var lease = await http.Lease("billing");
            await http.Fail(lease, "card_declined: insufficient funds", "at Billing.Gateway.CaptureAsync(Charge charge)\n   at Jobs.ChargeHandler.HandleAsync(Job job)", dead: true);
        }
        await http.Send(HttpMethod.Post, "/v1/queues/thumbnails/pause");
    }
}
